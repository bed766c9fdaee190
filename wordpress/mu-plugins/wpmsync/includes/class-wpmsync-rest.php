<?php
/**
 * POST /wp-json/wpmsync/v1/clean-cache: the functions write memberships with SQL, so WordPress's
 * object cache (Redis, Memcached) may still hold the old usermeta; after a batch they call this
 * route with the users and sites they touched.
 *
 * Body {"user_ids": [...], "blog_ids": [...]}, signed like the hooks (same secret, headers and
 * five-minute window). There is no WordPress user behind the call: the signature is the
 * permission.
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
			$this->config->hook_secret(),
			$request->get_header( Wpmsync_Signer::TIMESTAMP_HEADER ),
			$request->get_header( Wpmsync_Signer::SIGNATURE_HEADER ),
			(string) $request->get_body()
		);
	}

	/**
	 * Clean what core's add_user_to_blog() cleans, plus the user's meta cache (which
	 * clean_user_cache() leaves alone in 6.1, and which holds the capabilities we changed).
	 *
	 * @param WP_REST_Request $request Request.
	 * @return WP_REST_Response|WP_Error
	 */
	public function clean_cache( WP_REST_Request $request ) {
		$data = json_decode( (string) $request->get_body(), true );
		if ( ! is_array( $data ) || ( array() !== $data && array_keys( $data ) === range( 0, count( $data ) - 1 ) ) ) {
			return self::bad_request( __( 'The body must be a JSON object {"user_ids": [...], "blog_ids": [...]}.', 'wpmsync' ) );
		}
		$user_ids = self::ids( $data, 'user_ids' );
		$blog_ids = self::ids( $data, 'blog_ids' );
		if ( is_wp_error( $user_ids ) ) {
			return $user_ids;
		}
		if ( is_wp_error( $blog_ids ) ) {
			return $blog_ids;
		}
		if ( count( $user_ids ) + count( $blog_ids ) > self::MAX_IDS ) {
			/* translators: %d: maximum number of ids. */
			return self::bad_request( sprintf( __( 'At most %d ids per request.', 'wpmsync' ), self::MAX_IDS ) );
		}
		$this->events->muted(
			function () use ( $user_ids, $blog_ids ) {
				foreach ( $user_ids as $user_id ) {
					clean_user_cache( $user_id );
					wp_cache_delete( $user_id, 'user_meta' );
				}
				foreach ( $blog_ids as $blog_id ) {
					wp_cache_delete( $blog_id . '_user_count', 'blog-details' );
				}
			}
		);
		return new WP_REST_Response(
			array(
				'users' => count( $user_ids ),
				'blogs' => count( $blog_ids ),
			),
			200
		);
	}

	/**
	 * A list of positive integer ids (JSON numbers or digit strings), duplicates dropped.
	 *
	 * @param array  $data Body.
	 * @param string $key  Field.
	 * @return int[]|WP_Error
	 */
	private static function ids( array $data, $key ) {
		if ( ! isset( $data[ $key ] ) ) {
			return array();
		}
		if ( ! is_array( $data[ $key ] ) ) {
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
