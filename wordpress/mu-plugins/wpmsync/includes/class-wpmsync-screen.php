<?php
/**
 * What every network screen of the user sync has in common (options, bulk sync / unsync, undo
 * journal): a submenu page of the network admin that handles its own form on `load-{page}`,
 * before any output, and renders the outcome on the same response, with the notices of that
 * request.
 *
 * The access checks live here, in final methods, so that a screen cannot forget them: posting
 * needs the page's capability (checked again although the menu already asks for it, because
 * `load-{page}` is not the only way to reach handle()), and rendering shows nothing without it.
 * Each screen checks its own nonce, since the nonce's action differs (the journal binds it to
 * the change undone).
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * A network admin screen of the user sync.
 */
abstract class Wpmsync_Screen {

	/**
	 * The admin file the page is a submenu of (add_submenu_page()'s parent slug); its URL is
	 * that file with ?page=SLUG. Every screen sets it, with SLUG and CAPABILITY.
	 */
	const PARENT_FILE = '';

	/** The page's slug (?page=): also the id of its tab. */
	const SLUG = '';

	/** Needed to see the page and to post to it. */
	const CAPABILITY = '';

	/** @var Wpmsync_Client */
	protected $client;

	/** @var Wpmsync_Notices Notices of this request, shown when the page renders. */
	protected $notices;

	/**
	 * @param Wpmsync_Client $client Functions client.
	 */
	public function __construct( Wpmsync_Client $client ) {
		$this->client  = $client;
		$this->notices = new Wpmsync_Notices();
	}

	/**
	 * The page's title, also its menu entry (a method rather than a constant: it is translated).
	 *
	 * @return string
	 */
	abstract protected function title();

	/** Hook into WordPress. */
	public function register() {
		add_action( 'network_admin_menu', array( $this, 'add_page' ) );
	}

	/** The submenu page; its form is handled on `load-{page}`, before the admin prints anything. */
	public function add_page() {
		$hook = add_submenu_page(
			static::PARENT_FILE,
			$this->title(),
			$this->title(),
			static::CAPABILITY,
			static::SLUG,
			array( $this, 'render' )
		);
		if ( $hook ) {
			add_action( 'load-' . $hook, array( $this, 'handle' ) );
		}
	}

	/** @return string This page's URL. */
	public static function url() {
		return network_admin_url( static::PARENT_FILE . '?page=' . static::SLUG );
	}

	/** Capability first; a GET changes nothing, a POST goes to the screen. */
	final public function handle() {
		if ( ! current_user_can( static::CAPABILITY ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage the user sync.', 'wpmsync' ), 403 );
		}
		if ( ! isset( $_SERVER['REQUEST_METHOD'] ) || 'POST' !== $_SERVER['REQUEST_METHOD'] ) {
			return;
		}
		$this->handle_post();
	}

	/** A POST by an admin with the capability: check the nonce, then act. */
	abstract protected function handle_post();

	/** The page, for an admin with the capability only. */
	final public function render() {
		if ( ! current_user_can( static::CAPABILITY ) ) {
			return;
		}
		$this->render_page();
	}

	/** Gather what the view needs and require it. */
	abstract protected function render_page();
}
