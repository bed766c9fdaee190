<?php
/**
 * POST /wp-json/wpmsync/v1/clean-cache: the functions write memberships with SQL, and role
 * replication (missing_role = copy) rewrites a site's {prefix}{N}_user_roles option with SQL, so
 * WordPress's object cache (Redis, Memcached) may still hold the old usermeta and, in the site's
 * autoloaded alloptions, the old roles; after a batch they call this route with the users and
 * sites they touched.
 *
 * Body {"user_ids": [...], "blog_ids": [...], "roles_blog_ids": [...]}, every field optional,
 * ids positive integers (JSON numbers or digit strings), at most 10,000 in all; signed like the
 * hooks (same secret, headers and five-minute window; during a rotation the previous secret is
 * accepted too, see Wpmsync_Signer). There is no WordPress user behind the
 * call: the signature is the permission. A malformed body is refused (400) before anything is
 * cleaned; a roles_blog_ids entry naming no existing site (deleted meanwhile) is skipped.
 *
 * Answer {"users": n, "blogs": n} plus, when the body carries roles_blog_ids, "roles": the
 * number of sites whose roles cache was cleaned.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * The clean-cache route.
 */
final class Wpmsync_Rest {

	const REST_NAMESPACE = 'wpmsync/v1';
	const MAX_IDS        = 10000;

	/** @var Wpmsync_Config */
	private $config;

	/** @var Wpmsync_Events */
	private $events;

	/**
	 * @param Wpmsync_Config $config Configuration.
	 * @param Wpmsync_Events $events Muted while cleaning.
	 */
	public function __construct( Wpmsync_Config $config, Wpmsync_Events $events ) {
		$this->config = $config;
		$this->events = $events;
	}

	/** Hook into WordPress. */
	public function register() {
		add_action( 'rest_api_init', array( $this, 'register_routes' ) );
	}

	/** Register the route. */
	public function register_routes() {
		register_rest_route(
			self::REST_NAMESPACE,
			'/clean-cache',
			array(
				'methods'             => 'POST',
				'callback'            => array( $this, 'clean_cache' ),
				'permission_callback' => array( $this, 'check_signature' ),
			)
		);
	}

	/**
	 * Permission: a valid signature of the raw body, at most five minutes old.
	 *
	 * @param WP_REST_Request $request Request.
	 * @return true|WP_Error 401 when unsigned, badly signed or expired.
	 */
	public function check_signature( WP_REST_Request $request ) {
		return Wpmsync_Signer::verify(
			$this->config->hook_secrets(),
			$request->get_header( Wpmsync_Signer::TIMESTAMP_HEADER ),
			$request->get_header( Wpmsync_Signer::SIGNATURE_HEADER ),
			(string) $request->get_body()
		);
	}

	/**
	 * Clean what core's add_user_to_blog() cleans, plus the user's meta cache (which
	 * clean_user_cache() leaves alone in 6.1, and which holds the capabilities we changed);
	 * for roles_blog_ids, what update_option() refreshes for the site's roles option.
	 *
	 * @param WP_REST_Request $request Request.
	 * @return WP_REST_Response|WP_Error
	 */
	public function clean_cache( WP_REST_Request $request ) {
		$data = json_decode( (string) $request->get_body(), true );
		if ( ! is_array( $data ) || ( array() !== $data && array_keys( $data ) === range( 0, count( $data ) - 1 ) ) ) {
			return self::bad_request( __( 'The body must be a JSON object {"user_ids": [...], "blog_ids": [...], "roles_blog_ids": [...]}.', 'wpmsync' ) );
		}
		$user_ids  = self::ids( $data, 'user_ids' );
		$blog_ids  = self::ids( $data, 'blog_ids' );
		$roles_ids = self::ids( $data, 'roles_blog_ids' );
		foreach ( array( $user_ids, $blog_ids, $roles_ids ) as $ids ) {
			if ( is_wp_error( $ids ) ) {
				return $ids;
			}
		}
		if ( count( $user_ids ) + count( $blog_ids ) + count( $roles_ids ) > self::MAX_IDS ) {
			/* translators: %d: maximum number of ids. */
			return self::bad_request( sprintf( __( 'At most %d ids per request.', 'wpmsync' ), self::MAX_IDS ) );
		}
		$roles_sites = self::existing_sites( $roles_ids );
		$this->events->muted(
			function () use ( $user_ids, $blog_ids, $roles_sites ) {
				foreach ( $user_ids as $user_id ) {
					clean_user_cache( $user_id );
					wp_cache_delete( $user_id, 'user_meta' );
				}
				foreach ( $blog_ids as $blog_id ) {
					wp_cache_delete( $blog_id . '_user_count', 'blog-details' );
				}
				foreach ( $roles_sites as $blog_id ) {
					self::clean_roles( $blog_id );
				}
				// switch_to_blog() of the current site reloads nothing: refresh this request's roles.
				if ( in_array( get_current_blog_id(), $roles_sites, true ) ) {
					wp_roles()->for_site( get_current_blog_id() );
				}
			}
		);
		$answer = array(
			'users' => count( $user_ids ),
			'blogs' => count( $blog_ids ),
		);
		if ( array_key_exists( 'roles_blog_ids', $data ) ) {
			$answer['roles'] = count( $roles_sites );
		}
		return new WP_REST_Response( $answer, 200 );
	}

	/**
	 * Forget a site's cached roles option as update_option() would refresh it (wp-includes/option.php,
	 * WordPress 6.1): the options group is per site, so switch to it, then drop the autoloaded
	 * 'alloptions' (user_roles is autoloaded), the option's own key (where get_option() caches
	 * an option that is not autoloaded) and its entry in 'notoptions' (in case the row was
	 * missing and replication inserted it).
	 * WP_Roles::for_site() reads the option with get_option() (through get_blog_option() for
	 * another site), so the next wp_roles() / WP_Roles::for_site() reads the new roles.
	 *
	 * @param int $blog_id An existing site.
	 */
	private static function clean_roles( $blog_id ) {
		global $wpdb;
		$option = $wpdb->get_blog_prefix( $blog_id ) . 'user_roles';
		switch_to_blog( $blog_id );
		wp_cache_delete( 'alloptions', 'options' );
		wp_cache_delete( $option, 'options' );
		$notoptions = wp_cache_get( 'notoptions', 'options' );
		if ( is_array( $notoptions ) && isset( $notoptions[ $option ] ) ) {
			unset( $notoptions[ $option ] );
			wp_cache_set( 'notoptions', $notoptions, 'options' );
		}
		restore_current_blog();
	}

	/**
	 * The ids that name existing sites (of any network), in the given order.
	 *
	 * @param int[] $ids Site ids.
	 * @return int[]
	 */
	private static function existing_sites( array $ids ) {
		if ( array() === $ids ) {
			return array();
		}
		$found = get_sites(
			array(
				'site__in'               => $ids,
				'fields'                 => 'ids',
				'number'                 => count( $ids ),
				'update_site_meta_cache' => false,
			)
		);
		$found = array_flip( array_map( 'intval', $found ) );
		return array_values(
			array_filter(
				$ids,
				function ( $id ) use ( $found ) {
					return isset( $found[ $id ] );
				}
			)
		);
	}

	/**
	 * A JSON list (not an object) of positive integer ids (JSON numbers or digit strings),
	 * duplicates dropped.
	 *
	 * @param array  $data Body.
	 * @param string $key  Field.
	 * @return int[]|WP_Error
	 */
	private static function ids( array $data, $key ) {
		if ( ! isset( $data[ $key ] ) ) {
			return array();
		}
		if ( ! is_array( $data[ $key ] ) || ( array() !== $data[ $key ] && array_keys( $data[ $key ] ) !== range( 0, count( $data[ $key ] ) - 1 ) ) ) {
			/* translators: %s: field name. */
			return self::bad_request( sprintf( __( '%s must be a list of ids.', 'wpmsync' ), $key ) );
		}
		if ( count( $data[ $key ] ) > self::MAX_IDS ) {
			/* translators: %d: maximum number of ids. */
			return self::bad_request( sprintf( __( 'At most %d ids per request.', 'wpmsync' ), self::MAX_IDS ) );
		}
		$ids = array();
		foreach ( $data[ $key ] as $id ) {
			if ( ! ( is_int( $id ) || ( is_string( $id ) && ctype_digit( $id ) && strlen( $id ) < 20 ) ) || (int) $id <= 0 ) {
				/* translators: %s: field name. */
				return self::bad_request( sprintf( __( '%s must hold positive integers only.', 'wpmsync' ), $key ) );
			}
			$ids[ (int) $id ] = (int) $id;
		}
		return array_values( $ids );
	}

	/**
	 * @param string $message Why.
	 * @return WP_Error
	 */
	private static function bad_request( $message ) {
		return new WP_Error( 'wpmsync_bad_request', $message, array( 'status' => 400 ) );
	}
}
