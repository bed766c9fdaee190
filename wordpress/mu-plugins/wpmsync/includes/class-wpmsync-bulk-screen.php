<?php
/**
 * Network Admin → Users → Bulk user sync (users.php?page=wpmsync-bulk): pick users and sites,
 * then add the users to the sites (POST {endpoint}/users/sync), take them off (POST
 * {endpoint}/unsync), or preview either (the same with "dry_run": true).
 *
 * The user picker searches on the server (WP_User_Query over the network's user table, by login,
 * e-mail, nicename and display name, 20 a page), so it works however many users the network has;
 * the users picked so far travel with every submit as hidden inputs (shown as chips). Everything
 * is one POST form with one nonce: searching, paging and picking never change anything, only the
 * four action buttons call the functions, which do every write.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * The bulk sync / unsync screen.
 */
final class Wpmsync_Bulk_Screen extends Wpmsync_Screen {

	const PARENT_FILE = 'users.php';
	const SLUG        = 'wpmsync-bulk';
	const CAPABILITY  = 'manage_network_users';
	const NONCE       = 'wpmsync_bulk';
	const PER_PAGE    = 20;

	/** Users one request may carry: well below the functions' 64 KiB body limit. */
	const MAX_USERS = 500;

	/** Action => [route, dry run]. */
	const ACTIONS = array(
		'preview_sync'   => array( 'users/sync', true ),
		'sync'           => array( 'users/sync', false ),
		'preview_unsync' => array( 'unsync', true ),
		'unsync'         => array( 'unsync', false ),
	);

	/** @var int[] Users picked. */
	private $users = array();

	/** @var int[] Sites checked. */
	private $sites = array();

	/** @var string Search term. */
	private $search = '';

	/** @var int Page of the search results. */
	private $paged = 1;

	/** @var bool Also add back users removed on purpose. */
	private $force = false;

	/** @var array|null {action, dry_run, data} of the call made in this request. */
	private $outcome;

	/** @return string Network Admin → Users → Bulk user sync. */
	protected function title() {
		return __( 'Bulk user sync', 'wpmsync' );
	}

	/** POST: nonce first; then the picker's state, then the action if any. */
	protected function handle_post() {
		check_admin_referer( self::NONCE );
		// phpcs:disable WordPress.Security.NonceVerification.Missing -- checked just above.
		$post   = wp_unslash( $_POST );
		$unpick = isset( $post['wpmsync_unpick'] ) ? absint( $post['wpmsync_unpick'] ) : 0;
		$action = isset( $post['wpmsync_action'] ) ? sanitize_key( $post['wpmsync_action'] ) : '';
		// phpcs:enable
		$users = array_merge( self::ids( $post, 'wpmsync_users' ), self::ids( $post, 'wpmsync_pick' ) );
		$users = array_values( array_diff( array_unique( $users ), array( $unpick ) ) );
		if ( count( $users ) > self::MAX_USERS ) {
			/* translators: %d: maximum number of users. */
			$this->notices->add( 'warning', sprintf( __( 'At most %d users at a time: the rest were dropped from the selection.', 'wpmsync' ), self::MAX_USERS ) );
			$users = array_slice( $users, 0, self::MAX_USERS );
		}
		$this->users  = $users;
		$this->sites  = self::ids( $post, 'wpmsync_sites' );
		$this->force  = ! empty( $post['wpmsync_force'] );
		$this->search = isset( $post['wpmsync_search'] ) ? substr( sanitize_text_field( (string) $post['wpmsync_search'] ), 0, 100 ) : '';
		$this->paged  = isset( $post['wpmsync_goto'] ) ? max( 1, absint( $post['wpmsync_goto'] ) ) : 1;
		if ( isset( self::ACTIONS[ $action ] ) ) {
			$this->run( $action );
		}
	}

	/**
	 * @param array  $post Unslashed POST.
	 * @param string $name Field of ids.
	 * @return int[] Positive ids, unique, in the posted order.
	 */
	private static function ids( array $post, $name ) {
		$raw = isset( $post[ $name ] ) ? (array) $post[ $name ] : array();
		return array_values( array_unique( array_filter( array_map( 'absint', $raw ) ) ) );
	}

	/**
	 * Call the functions for one of the four actions; the outcome is shown on this response.
	 *
	 * @param string $action Key of ACTIONS.
	 */
	private function run( $action ) {
		if ( ! $this->users || ! $this->sites ) {
			$this->notices->add( 'error', __( 'Pick at least one user and one site.', 'wpmsync' ) );
			return;
		}
		list( $route, $dry_run ) = self::ACTIONS[ $action ];
		$payload                 = array(
			'user_ids' => $this->users,
			'blog_ids' => $this->sites,
		);
		if ( 'users/sync' === $route && $this->force ) {
			$payload['force'] = true;
		}
		if ( $dry_run ) {
			$payload['dry_run'] = true;
		}
		$answer = $this->client->call( 'POST', $route, $payload );
		if ( is_wp_error( $answer ) ) {
			$this->notices->add( 'error', $answer->get_error_message() );
			return;
		}
		$this->outcome = array(
			'action'  => $action,
			'dry_run' => $dry_run,
			'data'    => $answer['data'],
		);
		$messages = array(
			'preview_sync'   => __( 'Preview: nothing was changed. This is what adding the users would do.', 'wpmsync' ),
			'sync'           => __( 'The users were added to the selected sites.', 'wpmsync' ),
			'preview_unsync' => __( 'Preview: nothing was changed. This is what removing the users would do.', 'wpmsync' ),
			'unsync'         => __( 'The users were removed from the selected sites.', 'wpmsync' ),
		);
		$this->notices->add( $dry_run ? 'info' : 'success', $messages[ $action ] );
	}

	/**
	 * Users matching the search (all network users when empty), one page.
	 *
	 * @return array{users: WP_User[]|object[], total: int, pages: int}
	 */
	private function search_results() {
		$args = array(
			'blog_id'     => 0, // The whole network's user table, not one site's members.
			'number'      => self::PER_PAGE,
			'paged'       => $this->paged,
			'orderby'     => 'login',
			'order'       => 'ASC',
			'count_total' => true,
			'fields'      => array( 'ID', 'user_login', 'user_email', 'display_name' ),
		);
		if ( '' !== $this->search ) {
			$args['search']         = '*' . $this->search . '*';
			$args['search_columns'] = array( 'user_login', 'user_email', 'user_nicename', 'display_name' );
		}
		$query = new WP_User_Query( $args );
		$total = (int) $query->get_total();
		return array(
			'users' => $query->get_results(),
			'total' => $total,
			'pages' => max( 1, (int) ceil( $total / self::PER_PAGE ) ),
		);
	}

	/**
	 * @param int[] $ids User ids.
	 * @return array<int,object> id => {ID, user_login, user_email, display_name}, in the given order.
	 */
	public static function users_by_id( array $ids ) {
		if ( ! $ids ) {
			return array();
		}
		$found = array();
		foreach ( get_users(
			array(
				'blog_id' => 0,
				'include' => $ids,
				'number'  => count( $ids ),
				'fields'  => array( 'ID', 'user_login', 'user_email', 'display_name' ),
			)
		) as $user ) {
			$found[ (int) $user->ID ] = $user;
		}
		$ordered = array();
		foreach ( $ids as $id ) {
			if ( isset( $found[ $id ] ) ) {
				$ordered[ $id ] = $found[ $id ];
			}
		}
		return $ordered;
	}

	/** The page. */
	protected function render_page() {
		$notices  = $this->notices;
		$results  = $this->search_results();
		$selected = self::users_by_id( $this->users );
		$sites    = get_sites( Wpmsync_Admin::site_query() );
		$checked  = $this->sites;
		$search   = $this->search;
		$paged    = min( $this->paged, $results['pages'] );
		$force    = $this->force;
		$outcome  = $this->outcome;
		require dirname( __DIR__ ) . '/views/bulk-page.php';
	}
}
