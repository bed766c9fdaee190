<?php
/**
 * HMAC signing of hook callbacks and of the clean-cache route, exactly as wpmsync/signing.py.
 *
 * Signature: "sha256=" + hex HMAC-SHA256(secret, "<timestamp>." + body), sent with the Unix
 * timestamp in X-Wpmsync-Timestamp. Signing the timestamp with the body stops an old request
 * from being replayed later with a fresh timestamp; the five-minute window bounds replays.
 * tests/vectors/signing.json holds shared vectors both languages must reproduce.
 *
 * Rotation without a gap: besides the current secret a side may hold the previous one
 * (WPMSYNC_HOOK_SECRET_PREVIOUS). It then signs with both, current first
 * ("sha256=<a>,sha256=<b>"), and accepts a request if any signature in the header matches any
 * of its secrets. With one secret the header is the single "sha256=<hex>" it always was. The
 * header grammar, the same as the Python verifier's: 1 to MAX_SIGNATURES comma-separated items,
 * each "sha256=" and 64 lowercase hex digits, spaces or tabs allowed around an item; anything
 * else is refused (401) before any HMAC is computed.
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

	/** Current + previous need two; a few more leave room, and no header costs more HMAC compares. */
	const MAX_SIGNATURES = 4;

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
	 * The non-empty secrets, in order, each once: a previous secret equal to the current one
	 * adds nothing. A single string is one secret.
	 *
	 * @param string|string[] $secrets Current secret, or current then previous.
	 * @return string[]
	 */
	public static function secret_list( $secrets ) {
		$out = array();
		foreach ( is_array( $secrets ) ? $secrets : array( $secrets ) as $secret ) {
			$secret = (string) $secret;
			if ( '' !== $secret && ! in_array( $secret, $out, true ) ) {
				$out[] = $secret;
			}
		}
		return $out;
	}

	/**
	 * The signature header value: one signature per secret, current first, comma-separated.
	 * With one secret exactly sign(): a side without a previous secret sends what it always sent.
	 *
	 * @param string|string[] $secrets   Current secret, or current then previous.
	 * @param string|int      $timestamp Unix seconds, as sent in the timestamp header.
	 * @param string          $body      The exact bytes sent.
	 * @return string
	 */
	public static function signature_header( $secrets, $timestamp, $body ) {
		$signatures = array();
		foreach ( self::secret_list( $secrets ) as $secret ) {
			$signatures[] = self::sign( $secret, $timestamp, $body );
		}
		return implode( ',', $signatures );
	}

	/**
	 * Headers for a signed request with the body $body.
	 *
	 * @param string|string[] $secrets Current secret, or current then previous.
	 * @param string          $body    The exact bytes sent.
	 * @param int|null        $now     Unix time (tests), default time().
	 * @return array<string,string>
	 */
	public static function headers( $secrets, $body, $now = null ) {
		$timestamp = (string) ( null === $now ? time() : (int) $now );
		return array(
			self::TIMESTAMP_HEADER => $timestamp,
			self::SIGNATURE_HEADER => self::signature_header( $secrets, $timestamp, $body ),
		);
	}

	/**
	 * The signatures of a signature header, or a 401 WP_Error when it is malformed.
	 *
	 * @param string $header Signature header.
	 * @return string[]|WP_Error
	 */
	public static function parse_signatures( $header ) {
		$items = array();
		foreach ( explode( ',', (string) $header ) as $item ) {
			$items[] = trim( $item, " \t" );
		}
		if ( count( $items ) > self::MAX_SIGNATURES ) {
			/* translators: %d: most signatures accepted in one header. */
			return self::refuse( sprintf( __( 'X-Wpmsync-Signature carries more than %d signatures.', 'wpmsync' ), self::MAX_SIGNATURES ) );
		}
		foreach ( $items as $item ) {
			if ( ! preg_match( '/\Asha256=[0-9a-f]{64}\z/', $item ) ) {
				return self::refuse( __( 'Malformed X-Wpmsync-Signature header: expected sha256=<64 hex>[,sha256=<64 hex>].', 'wpmsync' ) );
			}
		}
		return $items;
	}

	/**
	 * Whether any signature is the HMAC of any secret. Every pair is compared with hash_equals
	 * and none is skipped, so the time taken does not tell which item (or whether one) matched.
	 *
	 * @param string|string[] $secrets    Current secret, or current then previous.
	 * @param string          $timestamp  Timestamp header.
	 * @param string[]        $signatures From parse_signatures().
	 * @param string          $body       Raw body.
	 * @return bool
	 */
	public static function matches( $secrets, $timestamp, array $signatures, $body ) {
		$found = false;
		foreach ( self::secret_list( $secrets ) as $secret ) {
			$expected = self::sign( $secret, $timestamp, $body );
			foreach ( $signatures as $signature ) {
				$found = hash_equals( $expected, $signature ) || $found;
			}
		}
		return $found;
	}

	/**
	 * Check a signed request; the same rules as the Python verifier.
	 *
	 * The signature is compared with hash_equals (constant time) before the clock is looked at,
	 * so the answer does not tell an attacker whether a guessed signature was right.
	 *
	 * @param string|string[] $secrets   Current secret, or current then previous.
	 * @param string|null     $timestamp Timestamp header.
	 * @param string|null     $signature Signature header.
	 * @param string          $body      Raw body.
	 * @param int|null        $now       Unix time (tests), default time().
	 * @return true|WP_Error WP_Error with status 401 when refused.
	 */
	public static function verify( $secrets, $timestamp, $signature, $body, $now = null ) {
		$timestamp = is_string( $timestamp ) || is_int( $timestamp ) ? trim( (string) $timestamp ) : '';
		$signature = is_string( $signature ) ? $signature : '';
		if ( '' === $timestamp || '' === $signature ) {
			return self::refuse( __( 'Missing X-Wpmsync-Timestamp or X-Wpmsync-Signature header.', 'wpmsync' ) );
		}
		if ( ! ctype_digit( $timestamp ) || strlen( $timestamp ) > 12 ) {
			return self::refuse( __( 'X-Wpmsync-Timestamp must be Unix seconds.', 'wpmsync' ) );
		}
		$signatures = self::parse_signatures( $signature );
		if ( is_wp_error( $signatures ) ) {
			return $signatures;
		}
		if ( ! self::matches( $secrets, $timestamp, $signatures, $body ) ) {
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
