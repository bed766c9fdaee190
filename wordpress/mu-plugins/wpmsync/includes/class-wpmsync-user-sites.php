<?php
/**
 * The site checklist on Network Admin → Users → Edit user (network/user-edit.php): every live site
 * of the network, checked where the user is a member (is_user_member_of_blog()).
 *
 * Saving the profile sends the difference to the functions: newly checked sites to
 * POST {endpoint}/users/sync (with force, since an admin ticking a site for this one user means
 * it, even if the user was once removed from it on purpose), unchecked ones to
 * POST {endpoint}/unsync. WordPress itself changes nothing: the functions write the rows (and
 * remember removals). user-edit.php redirects after saving, so the outcome is kept for a minute
 * in a transient of the acting admin and shown as a notice on the next network admin page.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Per-user site checklist.
 */
final class Wpmsync_User_Sites {

	const CAPABILITY = 'manage_network_users';
	const FIELD      = 'wpmsync_user_sites';
	const NONCE_NAME = '_wpmsync_user_sites_nonce';

	/** @var Wpmsync_Client */
	private $client;

	/**
	 * @param Wpmsync_Client $client Functions client.
	 */
	public function __construct( Wpmsync_Client $client ) {
		$this->client = $client;
	}

	/** Hook into WordPress. */
	public function register() {
		add_action( 'edit_user_profile', array( $this, 'render' ) );
		add_action( 'edit_user_profile_update', array( $this, 'save' ) );
		add_action( 'network_admin_notices', array( $this, 'render_notice' ) );
	}

	/**
	 * @param int $user_id Edited user.
	 * @return string Nonce action, bound to the user.
	 */
	private static function nonce_action( $user_id ) {
		return 'wpmsync_user_sites_' . (int) $user_id;
	}

	/** @return string Transient holding the outcome for the acting admin. */
	private static function transient_key() {
		return 'wpmsync_user_sites_' . get_current_user_id();
	}

	/** @return bool Whether this request may show or use the checklist. */
	private static function allowed() {
		return is_network_admin() && current_user_can( self::CAPABILITY );
	}

	/**
	 * Live sites of the network where the user is a member.
	 *
	 * @param int       $user_id User.
	 * @param WP_Site[] $sites   Live sites.
	 * @return int[]
	 */
	private static function member_sites( $user_id, array $sites ) {
		$member = array();
		foreach ( $sites as $site ) {
			if ( is_user_member_of_blog( $user_id, (int) $site->blog_id ) ) {
				$member[] = (int) $site->blog_id;
			}
		}
		return $member;
	}

	/**
	 * The checklist, inside user-edit.php's form.
	 *
	 * @param WP_User $user Edited user.
	 */
	public function render( $user ) {
		if ( ! self::allowed() || ! $user instanceof WP_User ) {
			return;
		}
		$sites   = get_sites( Wpmsync_Admin::site_query() );
		$member  = self::member_sites( $user->ID, $sites );
		$user_id = (int) $user->ID;
		require dirname( __DIR__ ) . '/views/user-sites.php';
	}

	/**
	 * edit_user_profile_update (user-edit.php has checked its own nonce already): check ours,
	 * then send the difference to the functions.
	 *
	 * @param int $user_id Edited user.
	 */
	public function save( $user_id ) {
		$user_id = (int) $user_id;
		// phpcs:ignore WordPress.Security.NonceVerification.Missing -- only tells whether our checklist was on the form; the nonce is checked next.
		if ( ! self::allowed() || ! isset( $_POST[ self::FIELD . '_shown' ] ) ) {
			return;
		}
		$nonce = isset( $_POST[ self::NONCE_NAME ] ) ? sanitize_text_field( wp_unslash( $_POST[ self::NONCE_NAME ] ) ) : '';
		if ( ! wp_verify_nonce( $nonce, self::nonce_action( $user_id ) ) ) {
			// The rest of the profile is core's business; only our part is refused.
			$this->remember( array( array( 'error', __( 'The site memberships were not changed: the form has expired, reload the page and try again.', 'wpmsync' ) ) ) );
			return;
		}
		$sites   = get_sites( Wpmsync_Admin::site_query() );
		$live    = array_map( 'intval', wp_list_pluck( $sites, 'blog_id' ) );
		$posted  = isset( $_POST[ self::FIELD ] ) ? array_map( 'absint', (array) wp_unslash( $_POST[ self::FIELD ] ) ) : array();
		$checked = array_values( array_intersect( $live, $posted ) );
		$member  = self::member_sites( $user_id, $sites );
		$add     = array_values( array_diff( $checked, $member ) );
		$remove  = array_values( array_diff( $member, $checked ) );

		$messages = array();
		if ( $add ) {
			$messages[] = $this->send( 'users/sync', $user_id, $add, __( 'Added to %s.', 'wpmsync' ) );
		}
		if ( $remove ) {
			$messages[] = $this->send( 'unsync', $user_id, $remove, __( 'Removed from %s.', 'wpmsync' ) );
		}
		if ( $messages ) {
			$this->remember( $messages );
		}
	}

	/**
	 * One call to the functions, reduced to a notice.
	 *
	 * @param string $route    users/sync or unsync.
	 * @param int    $user_id  User.
	 * @param int[]  $blog_ids Sites.
	 * @param string $done     Message on success, %s: the sites it changed.
	 * @return array{0:string,1:string} [type, message]
	 */
	private function send( $route, $user_id, array $blog_ids, $done ) {
		$payload = array(
			'user_ids' => array( $user_id ),
			'blog_ids' => $blog_ids,
		);
		if ( 'users/sync' === $route ) {
			$payload['force'] = true;
		}
		$answer = $this->client->call( 'POST', $route, $payload );
		if ( is_wp_error( $answer ) ) {
			return array( 'error', $answer->get_error_message() );
		}
		$data    = $answer['data'];
		$changed = array();
		foreach ( isset( $data['sites'] ) && is_array( $data['sites'] ) ? $data['sites'] : array() as $blog_id => $entry ) {
			if ( is_array( $entry ) && ( ! empty( $entry['added'] ) || ! empty( $entry['removed'] ) ) ) {
				$site      = get_site( (int) $blog_id );
				$changed[] = $site ? untrailingslashit( $site->domain . $site->path ) : (string) (int) $blog_id;
			}
		}
		$message = $changed ? sprintf( $done, implode( ', ', $changed ) ) : __( 'No membership changed.', 'wpmsync' );
		$skipped = isset( $data['skipped'] ) && is_array( $data['skipped'] ) ? $data['skipped'] : array();
		foreach ( array_slice( $skipped, 0, 10 ) as $skip ) {
			if ( is_array( $skip ) && isset( $skip['reason'] ) && is_scalar( $skip['reason'] ) ) {
				/* translators: 1: site id, 2: reason. */
				$message .= ' ' . sprintf( __( 'Skipped site %1$d: %2$s.', 'wpmsync' ), isset( $skip['blog_id'] ) ? (int) $skip['blog_id'] : 0, (string) $skip['reason'] );
			}
		}
		if ( isset( $data['job_id'] ) && is_scalar( $data['job_id'] ) && Wpmsync_Journal_Screen::valid_change_id( (string) $data['job_id'] ) ) {
			/* translators: %s: journal id of the change. */
			$message .= ' ' . sprintf( __( '(Undo journal: %s.)', 'wpmsync' ), (string) $data['job_id'] );
		}
		return array( $skipped && ! $changed ? 'warning' : 'success', $message );
	}

	/**
	 * Keep notices for the page after the redirect.
	 *
	 * @param array[] $messages [type, message] pairs.
	 */
	private function remember( array $messages ) {
		set_transient( self::transient_key(), $messages, MINUTE_IN_SECONDS );
	}

	/** The outcome of the last save, once. */
	public function render_notice() {
		if ( ! self::allowed() ) {
			return;
		}
		$messages = get_transient( self::transient_key() );
		if ( ! is_array( $messages ) ) {
			return;
		}
		delete_transient( self::transient_key() );
		foreach ( $messages as $message ) {
			if ( is_array( $message ) && 2 === count( $message ) ) {
				Wpmsync_Notices::print_one( (string) $message[0], __( 'Sites of this user: ', 'wpmsync' ) . (string) $message[1] );
			}
		}
	}
}
