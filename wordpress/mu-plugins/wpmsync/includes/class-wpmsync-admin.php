<?php
/**
 * Screens: Network Admin → Settings → User sync (slug wpmsync) and, on every site,
 * Users → Network user sync (slug wpmsync-site); plus the job-status proxy for the progress bar.
 * It also starts the other network screens, each a small class of its own: the options
 * (Wpmsync_Options_Screen), bulk sync / unsync (Wpmsync_Bulk_Screen), the undo journal
 * (Wpmsync_Journal_Screen) and the site checklist of the user screen (Wpmsync_User_Sites).
 *
 * Forms post back to their own page and are handled on load-{page} (nonce and capability first),
 * and the outcome is shown on the same response. Every call to the functions happens here, on the
 * server, with the function key: the browser only ever talks to WordPress (admin-ajax.php), so
 * the key never leaves the server.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Network and site admin screens.
 */
final class Wpmsync_Admin {

	const NETWORK_SLUG = 'wpmsync';
	const SITE_SLUG    = 'wpmsync-site';
	const AJAX_ACTION  = 'wpmsync_job_status';

	/** Trigger switches: form field / API name => sitemeta key (owned by the functions). */
	const SWITCHES = array(
		'new_user'  => 'wpmus_newUserSync',
		'new_site'  => 'wpmus_newSiteSync',
		'role_sync' => 'wpmus_setUserRoleSync',
	);

	/** @var Wpmsync_Client */
	private $client;

	/** @var string[] Hook suffixes of our pages (for the script). */
	private $page_hooks = array();

	/** @var array<int,array{type:string,message:string}> Notices of this response. */
	private $notices = array();

	/** @var array|null Job to watch: {job_id, total}. */
	private $job;

	/** @var object[] The other network screens (options, bulk sync, journal) and the user checklist. */
	public $screens = array();

	/**
	 * @param Wpmsync_Client $client Functions client.
	 */
	public function __construct( Wpmsync_Client $client ) {
		$this->client = $client;
	}

	/** Hook into WordPress. */
	public function register() {
		add_action( 'network_admin_menu', array( $this, 'add_network_page' ) );
		add_action( 'admin_menu', array( $this, 'add_site_page' ) );
		add_action( 'admin_enqueue_scripts', array( $this, 'enqueue' ) );
		add_action( 'wp_ajax_' . self::AJAX_ACTION, array( $this, 'ajax_job_status' ) );
		$this->screens = array(
			'options' => new Wpmsync_Options_Screen( $this->client ),
			'bulk'    => new Wpmsync_Bulk_Screen( $this->client ),
			'journal' => new Wpmsync_Journal_Screen( $this->client ),
			'user'    => new Wpmsync_User_Sites( $this->client ),
		);
		foreach ( $this->screens as $screen ) {
			$screen->register();
		}
	}

	// -- menus -------------------------------------------------------------------------------

	/** Network Admin → Settings → User sync. */
	public function add_network_page() {
		$hook = add_submenu_page(
			'settings.php',
			__( 'User sync', 'wpmsync' ),
			__( 'User sync', 'wpmsync' ),
			'manage_network_options',
			self::NETWORK_SLUG,
			array( $this, 'render_network_page' )
		);
		if ( $hook ) {
			$this->page_hooks[] = $hook;
			add_action( 'load-' . $hook, array( $this, 'handle_network_request' ) );
		}
	}

	/** Users → Network user sync, on every site. */
	public function add_site_page() {
		$hook = add_submenu_page(
			'users.php',
			__( 'Network user sync', 'wpmsync' ),
			__( 'Network user sync', 'wpmsync' ),
			'manage_options',
			self::SITE_SLUG,
			array( $this, 'render_site_page' )
		);
		if ( $hook ) {
			$this->page_hooks[] = $hook;
			add_action( 'load-' . $hook, array( $this, 'handle_site_request' ) );
		}
	}

	/**
	 * The progress script, on our pages only.
	 *
	 * @param string $hook_suffix Current page.
	 */
	public function enqueue( $hook_suffix ) {
		if ( ! in_array( $hook_suffix, $this->page_hooks, true ) ) {
			return;
		}
		wp_enqueue_script( 'wpmsync-progress', plugins_url( 'assets/wpmsync-progress.js', WPMSYNC_PLUGIN_FILE ), array(), WPMSYNC_VERSION, true );
		wp_localize_script(
			'wpmsync-progress',
			'wpmsyncProgress',
			array(
				'unavailable' => __( 'Job status unavailable: %s', 'wpmsync' ),
				'gaveUp'      => __( 'Stopped asking for the job status; reload the page to try again.', 'wpmsync' ),
			)
		);
	}

	// -- request handling ----------------------------------------------------------------------

	/** POSTs of the network page: save switches, sync everything, sync selected sites. */
	public function handle_network_request() {
		if ( ! current_user_can( 'manage_network_options' ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage the user sync.', 'wpmsync' ), 403 );
		}
		$this->watch_job_from_query();
		$action = $this->posted_action();
		if ( 'save_settings' === $action ) {
			check_admin_referer( 'wpmsync_save_settings' );
			$this->save_settings();
		} elseif ( 'sync_all' === $action ) {
			check_admin_referer( 'wpmsync_sync_all' );
			$this->start_job( 'sync', array(), __( 'Sync from scratch started.', 'wpmsync' ) );
		} elseif ( 'sync_selected' === $action ) {
			check_admin_referer( 'wpmsync_sync_selected' );
			// phpcs:ignore WordPress.Security.NonceVerification.Missing -- checked just above.
			$raw      = isset( $_POST['wpmsync_sites'] ) ? (array) wp_unslash( $_POST['wpmsync_sites'] ) : array();
			$blog_ids = array_values( array_unique( array_filter( array_map( 'absint', $raw ) ) ) );
			if ( ! $blog_ids ) {
				$this->notice( 'error', __( 'Pick at least one site to sync.', 'wpmsync' ) );
				return;
			}
			/* translators: %d: number of sites. */
			$this->start_job( 'sync', array( 'blog_ids' => $blog_ids ), sprintf( _n( 'Sync of %d site started.', 'Sync of %d sites started.', count( $blog_ids ), 'wpmsync' ), count( $blog_ids ) ) );
		}
	}

	/** POST of a site page: pull every network user into this site. */
	public function handle_site_request() {
		if ( ! current_user_can( 'manage_options' ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage the user sync.', 'wpmsync' ), 403 );
		}
		$this->watch_job_from_query();
		if ( 'pull_users' === $this->posted_action() ) {
			check_admin_referer( 'wpmsync_pull_users' );
			$this->start_job( 'sites/' . get_current_blog_id() . '/sync', array(), __( 'Adding all network users to this site.', 'wpmsync' ) );
		}
	}

	/**
	 * @return string The wpmsync_action of a POST, '' otherwise (nonces are checked by the caller).
	 */
	private function posted_action() {
		if ( ! isset( $_SERVER['REQUEST_METHOD'] ) || 'POST' !== $_SERVER['REQUEST_METHOD'] ) {
			return '';
		}
		// phpcs:ignore WordPress.Security.NonceVerification.Missing -- the caller checks the nonce of this action.
		return isset( $_POST['wpmsync_action'] ) ? sanitize_key( wp_unslash( $_POST['wpmsync_action'] ) ) : '';
	}

	/** ?job_id=… shows the progress of a job started earlier (a reload keeps watching). */
	private function watch_job_from_query() {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- read-only; the status proxy checks its own nonce.
		$job_id = isset( $_GET['job_id'] ) ? strtolower( sanitize_text_field( wp_unslash( $_GET['job_id'] ) ) ) : '';
		if ( self::valid_job_id( $job_id ) ) {
			$this->job = array(
				'job_id' => $job_id,
				'total'  => 0,
			);
		}
	}

	/**
	 * Start a job; on 202 the page shows its progress, otherwise the functions' error.
	 *
	 * @param string $path    sync or sites/{id}/sync.
	 * @param array  $payload JSON body.
	 * @param string $success Notice on success.
	 */
	private function start_job( $path, array $payload, $success ) {
		$answer = $this->client->call( 'POST', $path, $payload );
		if ( is_wp_error( $answer ) ) {
			$this->notice( 'error', $answer->get_error_message() );
			return;
		}
		$job_id = isset( $answer['data']['job_id'] ) ? strtolower( (string) $answer['data']['job_id'] ) : '';
		if ( ! self::valid_job_id( $job_id ) ) {
			$this->notice( 'error', __( 'The sync service answered without a job id.', 'wpmsync' ) );
			return;
		}
		$this->job = array(
			'job_id' => $job_id,
			'total'  => isset( $answer['data']['batches'] ) ? max( 0, (int) $answer['data']['batches'] ) : 0,
		);
		$this->notice( 'success', $success );
	}

	/** PATCH the three switches from the posted checkboxes. */
	private function save_settings() {
		$payload = array();
		foreach ( array_keys( self::SWITCHES ) as $name ) {
			// phpcs:ignore WordPress.Security.NonceVerification.Missing -- checked by the caller; a checkbox is on when present.
			$payload[ $name ] = isset( $_POST[ 'wpmsync_' . $name ] ); // JSON true / false: the functions take nothing else.
		}
		$answer = $this->client->call( 'PATCH', 'settings', $payload );
		if ( is_wp_error( $answer ) ) {
			$this->notice( 'error', $answer->get_error_message() );
			return;
		}
		self::forget_cached_switches();
		$this->notice( 'success', __( 'Triggers saved.', 'wpmsync' ) );
	}

	/**
	 * The switches as the functions see them (the single source of truth is the sitemeta they
	 * own); when they cannot be reached, what WordPress reads from the same sitemeta, with a notice.
	 *
	 * @return array<string,bool>
	 */
	public function current_settings() {
		$answer = $this->client->call( 'GET', 'settings' );
		if ( ! is_wp_error( $answer ) && isset( $answer['data']['settings'] ) && is_array( $answer['data']['settings'] ) ) {
			$values = array();
			foreach ( array_keys( self::SWITCHES ) as $name ) {
				$values[ $name ] = ! empty( $answer['data']['settings'][ $name ] );
			}
			return $values;
		}
		$this->notice(
			'warning',
			sprintf(
				/* translators: %s: error message. */
				__( 'Could not read the triggers from the sync service (%s); showing the values stored in WordPress.', 'wpmsync' ),
				is_wp_error( $answer ) ? $answer->get_error_message() : __( 'unexpected answer', 'wpmsync' )
			)
		);
		self::forget_cached_switches();
		$values = array();
		foreach ( self::SWITCHES as $name => $option ) {
			$values[ $name ] = 'yes' === get_site_option( $option );
		}
		return $values;
	}

	/**
	 * The functions write sitemeta with SQL: drop WordPress's cached copies (a persistent object
	 * cache would otherwise keep the role-sync switch the hooks read).
	 */
	private static function forget_cached_switches() {
		$network_id = get_current_network_id();
		foreach ( self::SWITCHES as $option ) {
			wp_cache_delete( $network_id . ':' . $option, 'site-options' );
		}
		wp_cache_delete( $network_id . ':notoptions', 'site-options' );
	}

	// -- job status proxy ----------------------------------------------------------------------

	/**
	 * admin-ajax.php?action=wpmsync_job_status&job_id=…&_wpnonce=…: the status of one job, for
	 * the progress bar. The nonce is bound to the job id, so a page can only poll the job it shows.
	 */
	public function ajax_job_status() {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- validated, then the nonce of this job is checked.
		$job_id = isset( $_GET['job_id'] ) ? strtolower( sanitize_text_field( wp_unslash( $_GET['job_id'] ) ) ) : '';
		if ( ! self::valid_job_id( $job_id ) ) {
			wp_send_json_error( array( 'message' => __( 'job_id must be 32 hexadecimal characters.', 'wpmsync' ) ), 400 );
		}
		if ( ! check_ajax_referer( 'wpmsync_job_' . $job_id, '_wpnonce', false ) ) {
			wp_send_json_error( array( 'message' => __( 'The link has expired; reload the page.', 'wpmsync' ) ), 403 );
		}
		if ( ! current_user_can( 'manage_network_options' ) && ! current_user_can( 'manage_options' ) ) {
			wp_send_json_error( array( 'message' => __( 'Sorry, you are not allowed to see this job.', 'wpmsync' ) ), 403 );
		}
		$status = $this->job_status( $job_id );
		if ( is_wp_error( $status ) ) {
			$data = $status->get_error_data();
			$code = is_array( $data ) && isset( $data['status'] ) ? (int) $data['status'] : 0;
			wp_send_json_error( array( 'message' => $status->get_error_message() ), $code >= 400 ? $code : 502 );
		}
		wp_send_json_success( $status );
	}

	/**
	 * GET {endpoint}/jobs/{id}, reduced to what the progress bar shows. A site admin (no network
	 * capability) only sees jobs of their own site.
	 *
	 * @param string $job_id Validated job id.
	 * @return array|WP_Error {state, done, failed, total, memberships_added, finished, label}
	 */
	public function job_status( $job_id ) {
		if ( ! self::valid_job_id( $job_id ) ) {
			return new WP_Error( 'wpmsync_bad_job', __( 'job_id must be 32 hexadecimal characters.', 'wpmsync' ), array( 'status' => 400 ) );
		}
		$answer = $this->client->call( 'GET', 'jobs/' . $job_id );
		if ( is_wp_error( $answer ) ) {
			return $answer;
		}
		$job = $answer['data'];
		if ( ! current_user_can( 'manage_network_options' ) ) {
			$blogs = isset( $job['blog_ids'] ) && is_array( $job['blog_ids'] ) ? array_map( 'intval', $job['blog_ids'] ) : array();
			if ( array( get_current_blog_id() ) !== $blogs ) {
				return new WP_Error( 'wpmsync_forbidden', __( 'Sorry, you are not allowed to see this job.', 'wpmsync' ), array( 'status' => 403 ) );
			}
		}
		$state   = isset( $job['state'] ) ? sanitize_key( (string) $job['state'] ) : 'unknown';
		$batches = isset( $job['batches'] ) && is_array( $job['batches'] ) ? $job['batches'] : array();
		$done    = isset( $batches['done'] ) ? (int) $batches['done'] : 0;
		$failed  = isset( $batches['failed'] ) ? (int) $batches['failed'] : 0;
		$total   = isset( $batches['total'] ) ? (int) $batches['total'] : 0;
		$added   = isset( $job['memberships_added'] ) ? (int) $job['memberships_added'] : 0;
		$skipped = isset( $job['skipped']['count'] ) ? (int) $job['skipped']['count'] : 0;

		if ( 'done' === $state ) {
			/* translators: %s: number of memberships. */
			$label = sprintf( _n( 'done: %s membership added', 'done: %s memberships added', $added, 'wpmsync' ), number_format_i18n( $added ) );
			if ( $skipped ) {
				/* translators: %s: number of skipped items. */
				$label .= ', ' . sprintf( __( '%s skipped', 'wpmsync' ), number_format_i18n( $skipped ) );
			}
		} elseif ( 'failed' === $state ) {
			/* translators: %s: error message of the job. */
			$label = sprintf( __( 'failed: %s', 'wpmsync' ), self::first_error( $job ) );
		} elseif ( 'queued' === $state ) {
			/* translators: 1: batches done, 2: batches in all. */
			$label = sprintf( __( 'queued %1$d/%2$d batches', 'wpmsync' ), $done, $total );
		} else {
			/* translators: 1: batches done, 2: batches in all. */
			$label = sprintf( __( 'running %1$d/%2$d batches', 'wpmsync' ), $done, $total );
		}
		$waiting = Wpmsync_Outbox::stats()['pending'];
		if ( $waiting > 0 ) {
			/* translators: %s: number of WordPress changes not yet applied by the sync service. */
			$label .= ' · ' . sprintf( _n( '%s change made in WordPress still waiting', '%s changes made in WordPress still waiting', $waiting, 'wpmsync' ), number_format_i18n( $waiting ) );
		}
		return array(
			'outbox'            => $waiting,
			'state'             => $state,
			'done'              => $done,
			'failed'            => $failed,
			'total'             => $total,
			'memberships_added' => $added,
			'finished'          => in_array( $state, array( 'done', 'failed' ), true ),
			'label'             => $label,
		);
	}

	/**
	 * @param array $job Job status from the functions.
	 * @return string The first error, or a generic text.
	 */
	private static function first_error( array $job ) {
		if ( ! empty( $job['errors'] ) && is_array( $job['errors'] ) ) {
			$first = reset( $job['errors'] );
			if ( is_array( $first ) ) {
				foreach ( array( 'job', 'error' ) as $key ) {
					if ( ! empty( $first[ $key ] ) && is_scalar( $first[ $key ] ) ) {
						return substr( (string) $first[ $key ], 0, 300 );
					}
				}
			}
		}
		return __( 'see the job in the sync service', 'wpmsync' );
	}

	/**
	 * @param string $job_id Candidate.
	 * @return bool Whether it is 32 hex characters (what the functions hand out).
	 */
	public static function valid_job_id( $job_id ) {
		return is_string( $job_id ) && 1 === preg_match( '/^[0-9a-f]{32}$/', $job_id );
	}

	// -- rendering -----------------------------------------------------------------------------

	/** Network page. */
	public function render_network_page() {
		if ( ! current_user_can( 'manage_network_options' ) ) {
			return;
		}
		$settings = $this->current_settings();
		$sites    = get_sites( self::site_query() );
		$page_url = network_admin_url( 'settings.php?page=' . self::NETWORK_SLUG );
		require dirname( __DIR__ ) . '/views/network-page.php';
	}

	/**
	 * get_sites() arguments for the live sites of this network (the only ones a sync touches).
	 *
	 * @param array $extra More arguments (number, offset, count).
	 * @return array
	 */
	public static function site_query( array $extra = array() ) {
		return array_merge(
			array(
				'network_id' => get_current_network_id(),
				'archived'   => 0,
				'deleted'    => 0,
				'spam'       => 0,
				'number'     => 0,
				'orderby'    => 'id',
			),
			$extra
		);
	}

	/**
	 * @param WP_Site $site A site.
	 * @return string "3 — example.com/site/" (plain text).
	 */
	public static function site_label( $site ) {
		return sprintf( '%d — %s%s', $site->blog_id, $site->domain, $site->path );
	}

	/** Site page. */
	public function render_site_page() {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		$page_url = admin_url( 'users.php?page=' . self::SITE_SLUG );
		require dirname( __DIR__ ) . '/views/site-page.php';
	}

	/** The notices of this response, escaped. */
	public function render_notices() {
		foreach ( $this->notices as $notice ) {
			printf(
				'<div class="notice notice-%1$s"><p>%2$s</p></div>',
				esc_attr( $notice['type'] ),
				esc_html( $notice['message'] )
			);
		}
	}

	/** WordPress's events waiting for the functions (network admins only: they are network-wide). */
	public function render_outbox() {
		if ( current_user_can( 'manage_network_options' ) ) {
			$outbox = Wpmsync_Outbox::stats();
			require dirname( __DIR__ ) . '/views/outbox.php';
		}
	}

	/** The progress bar of the watched job, if any. */
	public function render_progress() {
		if ( ! $this->job ) {
			return;
		}
		$job_id = $this->job['job_id'];
		$total  = max( 1, (int) $this->job['total'] );
		require dirname( __DIR__ ) . '/views/progress.php';
	}

	/**
	 * @param string $type    success, error, warning, info.
	 * @param string $message Plain text (escaped when shown).
	 */
	private function notice( $type, $message ) {
		$this->notices[] = array(
			'type'    => $type,
			'message' => (string) $message,
		);
	}
}
