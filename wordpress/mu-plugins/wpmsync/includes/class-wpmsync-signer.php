<?php
/**
 * HMAC signing of hook callbacks and of the clean-cache route, exactly as wpmsync/signing.py.
 *
 * Signature: "sha256=" + hex HMAC-SHA256(secret, "<timestamp>." + body), sent with the Unix
 * timestamp in X-Wpmsync-Timestamp. Signing the timestamp with the body stops an old request
 * from being replayed later with a fresh timestamp; the five-minute window bounds replays.
 * tests/vectors/signing.json holds shared vectors both languages must reproduce.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Sign and verify.
 */
final class Wpmsync_Signer {

	const TIMESTAMP_HEADER = 'X-Wpmsync-Timestamp';
	const SIGNATURE_HEADER = 'X-Wpmsync-Signature';
	const WINDOW_SECONDS   = 300;

	/**
	 * The signature header value of a body.
	 *
	 * @param string     $secret    Shared secret.
	 * @param string|int $timestamp Unix seconds, as sent in the timestamp header.
	 * @param string     $body      The exact bytes sent.
	 * @return string "sha256=<64 hex>".
	 */
	public static function sign( $secret, $timestamp, $body ) {
		return 'sha256=' . hash_hmac( 'sha256', (string) $timestamp . '.' . (string) $body, (string) $secret );
	}

	/**
	 * Headers for a signed request with the body $body.
	 *
	 * @param string   $secret Shared secret.
	 * @param string   $body   The exact bytes sent.
	 * @param int|null $now    Unix time (tests), default time().
	 * @return array<string,string>
	 */
	public static function headers( $secret, $body, $now = null ) {
		$timestamp = (string) ( null === $now ? time() : (int) $now );
		return array(
			self::TIMESTAMP_HEADER => $timestamp,
			self::SIGNATURE_HEADER => self::sign( $secret, $timestamp, $body ),
		);
	}

	/**
	 * Check a signed request; the same rules as the Python verifier.
	 *
	 * The signature is compared with hash_equals (constant time) before the clock is looked at,
	 * so the answer does not tell an attacker whether a guessed signature was right.
	 *
	 * @param string      $secret    Shared secret.
	 * @param string|null $timestamp Timestamp header.
	 * @param string|null $signature Signature header.
	 * @param string      $body      Raw body.
	 * @param int|null    $now       Unix time (tests), default time().
	 * @return true|WP_Error WP_Error with status 401 when refused.
	 */
	public static function verify( $secret, $timestamp, $signature, $body, $now = null ) {
		$timestamp = is_string( $timestamp ) || is_int( $timestamp ) ? trim( (string) $timestamp ) : '';
		$signature = is_string( $signature ) ? trim( $signature ) : '';
		if ( '' === $timestamp || '' === $signature ) {
			return self::refuse( __( 'Missing X-Wpmsync-Timestamp or X-Wpmsync-Signature header.', 'wpmsync' ) );
		}
		if ( ! ctype_digit( $timestamp ) || strlen( $timestamp ) > 12 ) {
			return self::refuse( __( 'X-Wpmsync-Timestamp must be Unix seconds.', 'wpmsync' ) );
		}
		if ( '' === (string) $secret || ! hash_equals( self::sign( $secret, $timestamp, $body ), $signature ) ) {
			return self::refuse( __( 'Bad signature.', 'wpmsync' ) );
		}
		$now = null === $now ? time() : (int) $now;
		if ( abs( $now - (int) $timestamp ) > self::WINDOW_SECONDS ) {
			return self::refuse( __( 'The timestamp is more than 5 minutes away from now.', 'wpmsync' ) );
		}
		return true;
	}

	/**
	 * @param string $message Why.
	 * @return WP_Error
	 */
	private static function refuse( $message ) {
		return new WP_Error( 'wpmsync_unauthorized', $message, array( 'status' => 401 ) );
	}
}
