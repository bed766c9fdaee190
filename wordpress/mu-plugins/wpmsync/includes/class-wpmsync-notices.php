<?php
/**
 * Admin notices of one response, shared by the screens that handle their form and render on the
 * same request (the outcome of a call to the functions is shown right where it was asked for).
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * A list of notices, escaped when printed.
 */
final class Wpmsync_Notices {

	/** @var array<int,array{type:string,message:string}> */
	private $notices = array();

	/**
	 * @param string $type    success, error, warning, info.
	 * @param string $message Plain text (escaped when shown).
	 */
	public function add( $type, $message ) {
		$this->notices[] = array(
			'type'    => (string) $type,
			'message' => (string) $message,
		);
	}

	/**
	 * @return bool Whether an error was added (a form is then shown again with what was posted).
	 */
	public function has_errors() {
		foreach ( $this->notices as $notice ) {
			if ( 'error' === $notice['type'] ) {
				return true;
			}
		}
		return false;
	}

	/** Print them. */
	public function render() {
		foreach ( $this->notices as $notice ) {
			self::print_one( $notice['type'], $notice['message'] );
		}
	}

	/**
	 * @param string $type    success, error, warning, info.
	 * @param string $message Plain text.
	 */
	public static function print_one( $type, $message ) {
		printf(
			'<div class="notice notice-%1$s wpmsync-notice"><p>%2$s</p></div>',
			esc_attr( $type ),
			esc_html( $message )
		);
	}
}
