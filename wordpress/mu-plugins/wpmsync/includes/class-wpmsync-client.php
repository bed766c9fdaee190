<?php
/**
 * HTTP client of the Functions app: signed hooks and manual actions.
 *
 * Every request goes through wp_remote_request()/wp_remote_post(), so the usual WordPress HTTP
 * settings (proxy, CA bundle) apply and tests can intercept with the pre_http_request filter.
 * The function key is only ever put in a request header here; it never reaches the browser,
 * a log line or an error message.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Talks to {endpoint}/hooks (HMAC) and the manual routes (function key).
 */
final class Wpmsync_Client {

	/** Seconds a hook may take: hooks run at shutdown, after the visitor got the page. */
	const HOOK_TIMEOUT = 3;

	/** Seconds a manual action may take (starting a sync counts users and writes the job). */
	const ACTION_TIMEOUT = 20;

	/** @var Wpmsync_Config */
	private $config;

	/**
	 * @param Wpmsync_Config $config Configuration.
	 */
	public function __construct( Wpmsync_Config $config ) {
		$this->config = $config;
	}

	/**
	 * The JSON body of a hook: {"event", "event_id", "data"}.
	 *
	 * @param string      $event    Event name.
	 * @param array       $data     Event data.
	 * @param string|null $event_id The event's id in the outbox (a new one when null).
	 * @return string
	 */
	public static function hook_body( $event, array $data, $event_id = null ) {
		return (string) wp_json_encode(
			array(
				'event'    => (string) $event,
				'event_id' => null === $event_id ? wp_generate_uuid4() : (string) $event_id, // 36 chars of [0-9a-f-].
				'data'     => $data,
			)
		);
	}

	/**
	 * POST one signed hook. A failure is logged (never with the secret) and returned, never thrown:
	 * the event stays in the outbox until it is acknowledged.
	 *
	 * @param string      $event    Event name.
	 * @param array       $data     Event data.
	 * @param string|null $event_id The event's id in the outbox.
	 * @return true|WP_Error
	 */
	public function send_hook( $event, array $data, $event_id = null ) {
		$body     = self::hook_body( $event, $data, $event_id );
		$headers  = array_merge(
			array( 'Content-Type' => 'application/json' ),
			Wpmsync_Signer::headers( $this->config->hook_secrets(), $body )
		);
		$response = wp_remote_post(
			$this->config->url( 'hooks' ),
			array(
				'timeout'     => self::HOOK_TIMEOUT,
				'redirection' => 0,
				'headers'     => $headers,
				'body'        => $body,
				'data_format' => 'body',
			)
		);
		if ( is_wp_error( $response ) ) {
			self::log( sprintf( 'hook %s %s not delivered: %s', $event, wp_json_encode( $data ), $response->get_error_message() ) );
			return $response;
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		if ( $status < 200 || $status > 299 ) {
			$message = self::error_message( $response );
			if ( 401 === $status ) { // The one cause an operator can fix here; the outbox keeps the event meanwhile.
				$message .= ' ' . __( '(is WPMSYNC_HOOK_SECRET the functions\' hook secret? During a rotation see "Rotating the hook secret" in the README)', 'wpmsync' );
			}
			self::log( sprintf( 'hook %s %s answered HTTP %d: %s', $event, wp_json_encode( $data ), $status, $message ) );
			return new WP_Error( 'wpmsync_http_' . $status, $message, array( 'status' => $status ) );
		}
		return true;
	}

	/**
	 * Call a manual action with the function key.
	 *
	 * @param string     $method  GET, POST, PATCH.
	 * @param string     $path    Route below the endpoint, e.g. "sync".
	 * @param array|null $payload JSON body (objects: use an associative array; {} is array()).
	 * @return array|WP_Error {"status": int, "data": array} on a 2xx answer; otherwise a WP_Error
	 *                        with data status, whose message is the functions' refusal for a 4xx,
	 *                        the correlation id alone for a 5xx, and a plain "could not be
	 *                        reached" when the transport failed (its words go to the PHP log).
	 */
	public function call( $method, $path, $payload = null ) {
		$args = array(
			'method'      => strtoupper( $method ),
			'timeout'     => self::ACTION_TIMEOUT,
			'redirection' => 0,
			'headers'     => array(
				'x-functions-key' => $this->config->function_key(),
				'Accept'          => 'application/json',
			),
		);
		$actor = self::actor();
		if ( '' !== $actor ) {
			$args['headers']['X-Wpmsync-Actor'] = $actor;
		}
		if ( null !== $payload ) {
			$args['headers']['Content-Type'] = 'application/json';
			$args['body']                    = empty( $payload ) ? '{}' : (string) wp_json_encode( $payload );
			$args['data_format']             = 'body';
		}
		$response = wp_remote_request( $this->config->url( $path ), $args );
		if ( is_wp_error( $response ) ) {
			// The transport's words name hosts and ports: the PHP error log gets them, the screen does not.
			self::log( sprintf( '%s %s: %s', strtoupper( $method ), $path, $response->get_error_message() ) );
			return new WP_Error(
				'wpmsync_unreachable',
				__( 'The sync service could not be reached; the PHP error log says why.', 'wpmsync' ),
				array( 'status' => 0 )
			);
		}
		$status = (int) wp_remote_retrieve_response_code( $response );
		$data   = json_decode( (string) wp_remote_retrieve_body( $response ), true );
		if ( $status < 200 || $status > 299 ) {
			return new WP_Error( 'wpmsync_http_' . $status, self::error_message( $response ), array( 'status' => $status ) );
		}
		return array(
			'status' => $status,
			'data'   => is_array( $data ) ? $data : array(),
		);
	}

	/**
	 * Who is acting, for the functions' undo journal ("login (user 7)"): people reading the journal
	 * see which admin started a change. A label only; the function key authorises the call.
	 *
	 * @return string Empty outside a logged-in request.
	 */
	public static function actor() {
		$user = wp_get_current_user();
		if ( ! $user || ! $user->exists() ) {
			return '';
		}
		return sprintf( '%s (user %d)', preg_replace( '/[^\x20-\x7e]/', '', (string) $user->user_login ), (int) $user->ID );
	}

	/**
	 * A readable message of an error answer: the functions answer
	 * {"error": "...", "correlation_id": "..."}; anything else becomes "HTTP <status>".
	 *
	 * @param array $response wp_remote_* answer.
	 * @return string
	 */
	public static function error_message( $response ) {
		$status = (int) wp_remote_retrieve_response_code( $response );
		$data   = json_decode( (string) wp_remote_retrieve_body( $response ), true );
		/* translators: %d: HTTP status code. */
		$message = sprintf( __( 'HTTP %d from the sync service', 'wpmsync' ), $status );
		if ( ! is_array( $data ) ) {
			return $message;
		}
		// A refusal (4xx) says what was wrong with the request; a fault (5xx) is shown by its
		// correlation id only: its detail is in the functions' logs under that id.
		if ( $status < 500 && isset( $data['error'] ) && is_scalar( $data['error'] ) ) {
			$message .= ': ' . substr( (string) $data['error'], 0, 500 );
		}
		if ( ! empty( $data['correlation_id'] ) && is_scalar( $data['correlation_id'] ) ) {
			/* translators: %s: correlation id of the failed request, for the logs of the functions. */
			$message .= ' ' . sprintf( __( '(correlation id %s)', 'wpmsync' ), substr( preg_replace( '/[^A-Za-z0-9._:-]/', '', (string) $data['correlation_id'] ), 0, 64 ) );
		}
		return $message;
	}

	/**
	 * One line in the PHP error log. Callers never pass the key or the secret.
	 *
	 * @param string $message What happened.
	 */
	public static function log( $message ) {
		// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log -- the documented failure channel.
		error_log( 'wpmsync: ' . $message );
	}
}
