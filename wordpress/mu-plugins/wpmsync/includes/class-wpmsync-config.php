<?php
/**
 * Configuration: three constants from wp-config.php (and, during a hook secret rotation, an
 * optional fourth, WPMSYNC_HOOK_SECRET_PREVIOUS), never the database.
 *
 * The function key and the hook secret are credentials: keeping them out of the options tables
 * means a database dump, a backup or an SQL injection elsewhere never leaks them, and the
 * network admin screens cannot show them.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * The endpoint, the function key and the hook secret.
 */
final class Wpmsync_Config {

	/** Names of the constants an operator defines in wp-config.php. */
	const CONSTANTS = array( 'WPMSYNC_ENDPOINT', 'WPMSYNC_FUNCTION_KEY', 'WPMSYNC_HOOK_SECRET' );

	/** Optional: the secret being rotated out, honoured beside WPMSYNC_HOOK_SECRET (README). */
	const PREVIOUS_SECRET = 'WPMSYNC_HOOK_SECRET_PREVIOUS';

	/** @var string Base URL of the Functions app, without a trailing slash (…/api). */
	private $endpoint;

	/** @var string Function key for the manual actions (header x-functions-key). */
	private $function_key;

	/** @var string Shared HMAC secret of the hooks and of the clean-cache route. */
	private $hook_secret;

	/** @var string The previous HMAC secret during a rotation; '' when none. */
	private $previous_hook_secret;

	/**
	 * @param string $endpoint             Base URL, e.g. https://myapp.azurewebsites.net/api.
	 * @param string $function_key         Function key.
	 * @param string $hook_secret          HMAC secret.
	 * @param string $previous_hook_secret The secret being rotated out, or '' (none).
	 */
	public function __construct( $endpoint, $function_key, $hook_secret, $previous_hook_secret = '' ) {
		$this->endpoint             = rtrim( (string) $endpoint, '/' );
		$this->function_key         = (string) $function_key;
		$this->hook_secret          = (string) $hook_secret;
		$this->previous_hook_secret = (string) $previous_hook_secret;
	}

	/**
	 * Constants that are missing, empty or unusable (an endpoint that is not an http(s) URL, a
	 * previous secret that is defined but not a string: a typo there must not go unnoticed).
	 *
	 * @return string[] Constant names; empty when the configuration is complete.
	 */
	public static function problems() {
		$problems = array();
		foreach ( self::CONSTANTS as $name ) {
			if ( ! defined( $name ) || ! is_string( constant( $name ) ) || '' === trim( constant( $name ) ) ) {
				$problems[] = $name;
			}
		}
		if ( ! in_array( 'WPMSYNC_ENDPOINT', $problems, true ) && ! preg_match( '~^https?://[^/\s?#]+(/[^\s?#]*)?$~i', trim( WPMSYNC_ENDPOINT ) ) ) {
			$problems[] = 'WPMSYNC_ENDPOINT';
		}
		if ( defined( self::PREVIOUS_SECRET ) && ! is_string( constant( self::PREVIOUS_SECRET ) ) ) {
			$problems[] = self::PREVIOUS_SECRET;
		}
		return $problems;
	}

	/**
	 * The configuration from the constants, or null when incomplete (see problems()).
	 *
	 * @return Wpmsync_Config|null
	 */
	public static function from_constants() {
		if ( self::problems() ) {
			return null;
		}
		$previous = defined( self::PREVIOUS_SECRET ) ? constant( self::PREVIOUS_SECRET ) : '';
		return new self( trim( WPMSYNC_ENDPOINT ), trim( WPMSYNC_FUNCTION_KEY ), WPMSYNC_HOOK_SECRET, $previous );
	}

	/**
	 * Absolute URL of a Functions route.
	 *
	 * @param string $path Route below the base URL, e.g. "hooks" or "jobs/abc".
	 * @return string
	 */
	public function url( $path ) {
		return $this->endpoint . '/' . ltrim( $path, '/' );
	}

	/** @return string */
	public function endpoint() {
		return $this->endpoint;
	}

	/** @return string */
	public function function_key() {
		return $this->function_key;
	}

	/** @return string */
	public function hook_secret() {
		return $this->hook_secret;
	}

	/**
	 * The secrets to sign with and to accept: the current one, then the previous one when set
	 * (and different). See Wpmsync_Signer.
	 *
	 * @return string[]
	 */
	public function hook_secrets() {
		return Wpmsync_Signer::secret_list( array( $this->hook_secret, $this->previous_hook_secret ) );
	}
}
