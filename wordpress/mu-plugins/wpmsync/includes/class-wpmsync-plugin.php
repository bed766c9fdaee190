<?php
/**
 * Wiring: configuration check, then events, REST route and screens.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Entry point.
 */
final class Wpmsync_Plugin {

	/** @var Wpmsync_Plugin|null */
	private static $instance;

	/** @var Wpmsync_Config */
	public $config;

	/** @var Wpmsync_Client */
	public $client;

	/** @var Wpmsync_Events */
	public $events;

	/** @var Wpmsync_Rest */
	public $rest;

	/** @var Wpmsync_Admin */
	public $admin;

	/**
	 * Start (muplugins_loaded). Without its three constants the plugin does nothing at all but
	 * tell network admins what is missing: no hooks are sent, no route exists.
	 */
	public static function boot() {
		if ( self::$instance || ! is_multisite() ) {
			return;
		}
		load_muplugin_textdomain( 'wpmsync', 'wpmsync/languages' );
		$config = Wpmsync_Config::from_constants();
		if ( null === $config ) {
			add_action( 'network_admin_notices', array( __CLASS__, 'config_notice' ) );
			add_action( 'admin_notices', array( __CLASS__, 'config_notice' ) );
			return;
		}
		self::$instance = new self( $config );
	}

	/**
	 * The running plugin, or null when not configured.
	 *
	 * @return Wpmsync_Plugin|null
	 */
	public static function instance() {
		return self::$instance;
	}

	/**
	 * @param Wpmsync_Config $config Complete configuration.
	 */
	private function __construct( Wpmsync_Config $config ) {
		$this->config = $config;
		$this->client = new Wpmsync_Client( $config );
		$this->events = new Wpmsync_Events( $this->client );
		$this->rest   = new Wpmsync_Rest( $config, $this->events );
		$this->admin  = new Wpmsync_Admin( $this->client );
		$this->events->register();
		$this->rest->register();
		$this->admin->register();
	}

	/** Admin notice for network admins: which constants are missing. */
	public static function config_notice() {
		if ( ! current_user_can( 'manage_network_options' ) ) {
			return;
		}
		printf(
			'<div class="notice notice-warning"><p>%s</p></div>',
			esc_html(
				sprintf(
					/* translators: %s: comma-separated constant names. */
					__( 'wpmsync is not configured and does nothing: define %s in wp-config.php (WPMSYNC_ENDPOINT is the Functions base URL, e.g. https://myapp.azurewebsites.net/api).', 'wpmsync' ),
					implode( ', ', Wpmsync_Config::problems() )
				)
			)
		);
	}
}
