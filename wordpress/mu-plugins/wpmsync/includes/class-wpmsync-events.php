<?php
/**
 * Turns WordPress membership activity into hook callbacks for the functions.
 *
 * | WordPress                                   | event          | data                          |
 * | ------------------------------------------- | -------------- | ----------------------------- |
 * | user_register / wpmu_new_user               | user_created   | user_id, blog_id              |
 * | wpmu_activate_user (invitee activation)     | user_created   | user_id, blog_id (invited to) |
 * | wp_initialize_site                          | site_created   | blog_id                       |
 * | remove_user_from_blog                       | user_removed   | user_id, blog_id              |
 * | add_user_to_blog                            | user_added     | user_id, blog_id              |
 * | set_user_role (role sync switch on)         | role_changed   | user_id, blog_id, role, actor |
 *
 * Every event is written to the outbox (Wpmsync_Outbox) the moment it happens and sent at
 * shutdown, one callback per (event, user, blog) at most, so a change never costs the visitor a
 * round trip and one change never becomes several callbacks. What the functions do not
 * acknowledge stays in the outbox for WP-Cron and for the functions' own drain. A removal is also
 * recorded on the spot (Wpmsync_Removals), so no sync adds the user back even before the event
 * arrives. Core housekeeping is not reported:
 *
 * - a site being deleted removes all its members (wp_uninitialize_site, or wpmu_delete_blog
 *   without dropping tables): those are not decisions to keep a user off a site;
 * - a user deleted from the network is removed from each of its sites first (wpmu_delete_user);
 * - an invitee's activation removes the new user from the main site before adding them to the
 *   inviting site (add_new_user_to_blog on wpmu_activate_user);
 * - add_user_to_blog() and wp_insert_user() call WP_User::set_role(): that is a membership
 *   being made, not a role being changed, so no role_changed;
 * - a user or a site created in this request: their user_added / role_changed are part of the
 *   user_created / site_created callback (a new user or site cannot have removal records).
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Event capture and the shutdown sender.
 */
final class Wpmsync_Events {

	/** Sitemeta switch of role replication, owned by the functions (written through PATCH /settings). */
	const ROLE_SYNC_OPTION = 'wpmus_setUserRoleSync';

	/** @var Wpmsync_Client */
	private $client;

	/** @var Wpmsync_Outbox */
	private $outbox;

	/** @var array<string,array{event:string,data:array,id:int,event_id:string}> This request's events by dedupe key, in order. */
	private $queue = array();

	/** @var array<int,array{blog_id:int,pinned:bool}> Users created in this request. */
	private $created_users = array();

	/** @var array<int,bool> Sites created in this request. */
	private $created_blogs = array();

	/** @var array<string,int> "user:blog" pairs inside add_user_to_blog() right now (depth). */
	private $adding = array();

	/** @var array<int,bool> Users whose signup is being activated. */
	private $activating = array();

	/** @var array<int,bool> Sites being deleted in this request. */
	private $deleting_blogs = array();

	/** @var array<int,bool> Users being deleted from the network in this request. */
	private $deleting_users = array();

	/** @var int While > 0 our own work is running: nothing is reported. */
	private $muted = 0;

	/** @var bool Whether the queue is being sent. */
	private $flushing = false;

	/**
	 * @param Wpmsync_Client $client Sender.
	 */
	public function __construct( Wpmsync_Client $client ) {
		$this->client = $client;
		$this->outbox = new Wpmsync_Outbox();
	}

	/**
	 * Hook into WordPress.
	 */
	public function register() {
		// New users: wp_insert_user() runs set_role() before user_register; insert_user_meta
		// fires just before that and tells a new user (update = false) from an update.
		add_filter( 'insert_user_meta', array( $this, 'on_insert_user_meta' ), 10, 3 );
		add_action( 'user_register', array( $this, 'on_user_register' ), 10, 1 );
		add_action( 'wpmu_new_user', array( $this, 'on_user_register' ), 10, 1 );
		// Invitee activation: core's add_new_user_to_blog runs at priority 10 in between.
		add_action( 'wpmu_activate_user', array( $this, 'on_activation_start' ), 1, 1 );
		add_action( 'wpmu_activate_user', array( $this, 'on_activation_end' ), PHP_INT_MAX, 3 );

		// Sites: before core's own wp_initialize_site (priority 10), which adds the creator.
		add_action( 'wp_initialize_site', array( $this, 'on_initialize_site' ), 1, 1 );
		add_action( 'wp_validate_site_deletion', array( $this, 'on_validate_site_deletion' ), PHP_INT_MAX, 2 );
		add_action( 'wp_uninitialize_site', array( $this, 'on_uninitialize_site' ), 1, 1 );
		add_action( 'wpmu_delete_user', array( $this, 'on_delete_user' ), 1, 1 );

		// Memberships and roles.
		add_filter( 'can_add_user_to_blog', array( $this, 'on_can_add_user_to_blog' ), PHP_INT_MAX, 4 );
		add_action( 'add_user_to_blog', array( $this, 'on_add_user_to_blog' ), 10, 3 );
		add_action( 'remove_user_from_blog', array( $this, 'on_remove_user_from_blog' ), 10, 2 );
		add_action( 'set_user_role', array( $this, 'on_set_user_role' ), 10, 3 );

		// After output buffers are flushed (priority 1), late enough for other shutdown work.
		add_action( 'shutdown', array( $this, 'flush' ), 1000 );
		add_action( Wpmsync_Outbox::CRON_HOOK, array( $this, 'retry' ) );
	}

	/**
	 * Run $work without reporting what it does (our own activity must not call us back).
	 *
	 * @param callable $work Anything.
	 * @return mixed What $work returns.
	 */
	public function muted( callable $work ) {
		++$this->muted;
		try {
			return $work();
		} finally {
			--$this->muted;
		}
	}

	/**
	 * Callbacks waiting for shutdown (tests, diagnostics).
	 *
	 * @return array<int,array{event:string,data:array}>
	 */
	public function pending() {
		return array_values( $this->queue );
	}

	// -- users -------------------------------------------------------------------------------

	/**
	 * Note a user being inserted (not updated), where it happens, before set_role() runs.
	 *
	 * @param array   $meta   Default user meta (passed through).
	 * @param WP_User $user   The user.
	 * @param bool    $update Whether an existing user is updated.
	 * @return array
	 */
	public function on_insert_user_meta( $meta, $user, $update ) {
		if ( ! $update && $user instanceof WP_User && $user->ID ) {
			$this->note_created_user( (int) $user->ID );
		}
		return $meta;
	}

	/**
	 * user_register (any new account) and wpmu_new_user (after wpmu_create_user() stripped the
	 * main-site role): one user_created per user, sent at shutdown when core is done with it.
	 *
	 * @param int $user_id New user.
	 */
	public function on_user_register( $user_id ) {
		$user_id = (int) $user_id;
		if ( $this->muted || $user_id <= 0 ) {
			return;
		}
		$this->note_created_user( $user_id );
		$this->queue_user_created( $user_id );
	}

	/**
	 * @param int $user_id Invitee being activated.
	 */
	public function on_activation_start( $user_id ) {
		$this->activating[ (int) $user_id ] = true;
	}

	/**
	 * Core has moved the invitee from the main site to the inviting site: report the user as
	 * created there (the functions add only what is missing, so a second look is harmless).
	 *
	 * @param int   $user_id  Activated user.
	 * @param mixed $password Unused.
	 * @param array $meta     Signup meta; add_to_blog is the inviting site.
	 */
	public function on_activation_end( $user_id, $password = null, $meta = array() ) {
		$user_id = (int) $user_id;
		unset( $this->activating[ $user_id ] );
		if ( $this->muted || $user_id <= 0 ) {
			return;
		}
		$this->note_created_user( $user_id );
		if ( is_array( $meta ) && ! empty( $meta['add_to_blog'] ) ) {
			$this->pin_created_user( $user_id, (int) $meta['add_to_blog'] );
		}
		$this->queue_user_created( $user_id );
	}

	/**
	 * @param int $user_id User being deleted from the whole network.
	 */
	public function on_delete_user( $user_id ) {
		$this->deleting_users[ (int) $user_id ] = true;
	}

	// -- sites -------------------------------------------------------------------------------

	/**
	 * @param WP_Site $site The new site (its row exists; tables are made after us).
	 */
	public function on_initialize_site( $site ) {
		if ( $this->muted || ! $site instanceof WP_Site ) {
			return;
		}
		$blog_id                         = (int) $site->blog_id;
		$this->created_blogs[ $blog_id ] = true;
		$this->queue( 'site_created', array( 'blog_id' => $blog_id ), 'site_created:' . $blog_id );
	}

	/**
	 * The deletion passed validation: from here on core removes the site's members.
	 *
	 * @param WP_Error $errors Validation errors so far.
	 * @param WP_Site  $site   Site to delete.
	 */
	public function on_validate_site_deletion( $errors, $site ) {
		if ( $site instanceof WP_Site && ( ! $errors instanceof WP_Error || ! $errors->has_errors() ) ) {
			$this->deleting_blogs[ (int) $site->blog_id ] = true;
		}
	}

	/**
	 * @param WP_Site $site Site whose tables and members are about to go.
	 */
	public function on_uninitialize_site( $site ) {
		if ( $site instanceof WP_Site ) {
			$this->deleting_blogs[ (int) $site->blog_id ] = true;
		}
	}

	// -- memberships and roles ----------------------------------------------------------------

	/**
	 * Runs last on the filter: only a true answer means set_role() is about to run for
	 * add_user_to_blog(), and the add_user_to_blog action closes the window again.
	 *
	 * @param true|WP_Error $can     Whether the user may be added.
	 * @param int           $user_id User.
	 * @param string        $role    Role.
	 * @param int           $blog_id Site.
	 * @return true|WP_Error Unchanged.
	 */
	public function on_can_add_user_to_blog( $can, $user_id, $role = '', $blog_id = 0 ) {
		if ( true === $can ) {
			$key                  = (int) $user_id . ':' . (int) ( $blog_id ? $blog_id : get_current_blog_id() );
			$this->adding[ $key ] = ( isset( $this->adding[ $key ] ) ? $this->adding[ $key ] : 0 ) + 1;
		}
		return $can;
	}

	/**
	 * @param int    $user_id User added.
	 * @param string $role    Role.
	 * @param int    $blog_id Site.
	 */
	public function on_add_user_to_blog( $user_id, $role, $blog_id ) {
		$user_id = (int) $user_id;
		$blog_id = (int) $blog_id;
		$key     = $user_id . ':' . $blog_id;
		if ( isset( $this->adding[ $key ] ) && --$this->adding[ $key ] <= 0 ) {
			unset( $this->adding[ $key ] );
		}
		if ( $this->muted ) {
			return;
		}
		if ( isset( $this->created_users[ $user_id ] ) ) {
			// A new user's first site is where it was created (user-new.php on a subsite).
			$this->pin_created_user( $user_id, $blog_id );
			return;
		}
		if ( isset( $this->created_blogs[ $blog_id ] ) || isset( $this->activating[ $user_id ] ) ) {
			return;
		}
		$this->unqueue( 'user_removed:' . $key ); // Removed and added back: only the last counts.
		Wpmsync_Removals::forget( $user_id, $blog_id );
		$this->queue( 'user_added', array( 'user_id' => $user_id, 'blog_id' => $blog_id ), 'user_added:' . $key );
	}

	/**
	 * @param int $user_id User removed.
	 * @param int $blog_id Site.
	 */
	public function on_remove_user_from_blog( $user_id, $blog_id ) {
		$user_id = (int) $user_id;
		$blog_id = (int) $blog_id;
		if ( $this->muted || $user_id <= 0 || $blog_id <= 0 ) {
			return;
		}
		if ( isset( $this->deleting_blogs[ $blog_id ] ) || isset( $this->deleting_users[ $user_id ] )
			|| isset( $this->activating[ $user_id ] ) || self::inside( array( 'wpmu_delete_blog', 'wp_uninitialize_site', 'wpmu_delete_user', 'add_new_user_to_blog' ) ) ) {
			return;
		}
		$key = $user_id . ':' . $blog_id;
		$this->unqueue( 'user_added:' . $key );
		$this->unqueue( 'role_changed:' . $key );
		Wpmsync_Removals::record( $user_id, $blog_id ); // Before core deletes the rows: see the class.
		$this->queue( 'user_removed', array( 'user_id' => $user_id, 'blog_id' => $blog_id ), 'user_removed:' . $key );
	}

	/**
	 * A role set on one site; replicated by the functions when the role sync switch is on.
	 *
	 * @param int      $user_id   User.
	 * @param string   $role      New role ('' when all roles were taken away).
	 * @param string[] $old_roles Previous roles.
	 */
	public function on_set_user_role( $user_id, $role, $old_roles = array() ) {
		$user_id = (int) $user_id;
		$role    = (string) $role;
		if ( $this->muted || $user_id <= 0 || '' === $role ) {
			return; // An empty role replicates nothing (the functions skip it too).
		}
		$blog_id = self::role_site_id();
		if ( isset( $this->adding[ $user_id . ':' . $blog_id ] ) || isset( $this->created_users[ $user_id ] )
			|| isset( $this->created_blogs[ $blog_id ] ) || isset( $this->activating[ $user_id ] ) ) {
			return;
		}
		if ( 'yes' !== get_site_option( self::ROLE_SYNC_OPTION ) ) {
			return;
		}
		$this->queue(
			'role_changed',
			array(
				'user_id'  => $user_id,
				'blog_id'  => $blog_id,
				'role'     => $role,
				'actor_id' => get_current_user_id(),
			),
			'role_changed:' . $user_id . ':' . $blog_id
		);
	}

	// -- sending -----------------------------------------------------------------------------

	/**
	 * Send this request's events (shutdown). The visitor's response is finished first where
	 * PHP-FPM allows. Each acknowledged event leaves the outbox; after a transport error
	 * (endpoint unreachable, timeout) the rest stay there untried instead of making the request
	 * wait 3 s per callback: WP-Cron and the functions' drain deliver them.
	 */
	public function flush() {
		if ( $this->flushing || ! $this->queue ) {
			return;
		}
		$this->flushing = true;
		$queue          = $this->queue;
		$this->queue    = array();
		if ( function_exists( 'fastcgi_finish_request' ) ) {
			fastcgi_finish_request();
		}
		ignore_user_abort( true );
		try {
			$this->send( array_values( $queue ) );
		} catch ( Throwable $e ) {
			Wpmsync_Client::log( 'sending hooks failed: ' . $e->getMessage() );
		} finally {
			$this->flushing = false;
		}
	}

	/**
	 * WP-Cron: send what is due in the outbox, oldest first; a user whose event fails keeps its
	 * later events for the next try (the functions apply one user's events in order anyway).
	 */
	public function retry() {
		$items = array();
		foreach ( $this->outbox->due( Wpmsync_Outbox::RETRY_BATCH ) as $row ) {
			$data    = json_decode( (string) $row->data, true );
			$items[] = array(
				'id'       => (int) $row->id,
				'event_id' => (string) $row->event_id,
				'event'    => (string) $row->event,
				'data'     => is_array( $data ) ? $data : array(),
			);
		}
		$this->send( $items );
		if ( Wpmsync_Outbox::stats()['pending'] > 0 ) {
			Wpmsync_Outbox::schedule( 60 );
		}
	}

	/**
	 * Send events in order and settle each in the outbox.
	 *
	 * @param array<int,array{event:string,data:array,id:int,event_id:string}> $items Events.
	 */
	private function send( array $items ) {
		$held = array(); // Users with an event not acknowledged: their later events wait.
		$left = count( $items );
		foreach ( $items as $item ) {
			--$left;
			$user = isset( $item['data']['user_id'] ) ? (int) $item['data']['user_id'] : 0;
			if ( $user && isset( $held[ $user ] ) ) {
				continue;
			}
			$result = $this->client->send_hook( $item['event'], $item['data'], $item['event_id'] );
			if ( ! $this->outbox->settle( $item['id'], $result ) ) {
				$held[ $user ] = true;
				if ( is_wp_error( $result ) && 'wpmsync_http_' !== substr( $result->get_error_code(), 0, 13 ) ) {
					if ( $left > 0 ) {
						Wpmsync_Client::log( sprintf( '%d more hook(s) left in the outbox: the sync service is unreachable', $left ) );
					}
					break;
				}
			}
		}
	}

	// -- helpers -----------------------------------------------------------------------------

	/**
	 * @param string $event Event name.
	 * @param array  $data  Event data.
	 * @param string $key   Dedupe key: a later call with the same key replaces the data in place.
	 */
	private function queue( $event, array $data, $key ) {
		if ( isset( $this->queue[ $key ] ) ) {
			$row = $this->queue[ $key ];
			$this->outbox->update( $row['id'], $event, $data );
		} else {
			$row = $this->outbox->add( $event, $data );
		}
		$this->queue[ $key ] = array(
			'event'    => $event,
			'data'     => $data,
			'id'       => $row['id'],
			'event_id' => $row['event_id'],
		);
	}

	/**
	 * Drop an event of this request that a later one made pointless.
	 *
	 * @param string $key Dedupe key.
	 */
	private function unqueue( $key ) {
		if ( isset( $this->queue[ $key ] ) ) {
			$this->outbox->delete( $this->queue[ $key ]['id'] );
			unset( $this->queue[ $key ] );
		}
	}

	/**
	 * @param int $user_id A user created in this request; first seen on the current site.
	 */
	private function note_created_user( $user_id ) {
		if ( ! isset( $this->created_users[ $user_id ] ) ) {
			$this->created_users[ $user_id ] = array(
				'blog_id' => get_current_blog_id(),
				'pinned'  => false,
			);
		}
	}

	/**
	 * The first site a new user is added to is the site it was created on.
	 *
	 * @param int $user_id User.
	 * @param int $blog_id Site.
	 */
	private function pin_created_user( $user_id, $blog_id ) {
		if ( isset( $this->created_users[ $user_id ] ) && ! $this->created_users[ $user_id ]['pinned'] ) {
			$this->created_users[ $user_id ] = array(
				'blog_id' => (int) $blog_id,
				'pinned'  => true,
			);
			if ( isset( $this->queue[ 'user_created:' . $user_id ] ) ) {
				$this->queue_user_created( $user_id );
			}
		}
	}

	/**
	 * @param int $user_id New user (keyed by user alone: one user_created per user).
	 */
	private function queue_user_created( $user_id ) {
		$this->queue(
			'user_created',
			array(
				'user_id' => $user_id,
				'blog_id' => (int) $this->created_users[ $user_id ]['blog_id'],
			),
			'user_created:' . $user_id
		);
	}

	/**
	 * The site whose role set_role() just wrote: the WP_User object's site (for_site()), which is
	 * the current site unless a caller used for_site() without switching.
	 *
	 * @return int
	 */
	private static function role_site_id() {
		// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_debug_backtrace -- the hook does not pass the site.
		foreach ( debug_backtrace( DEBUG_BACKTRACE_PROVIDE_OBJECT, 8 ) as $frame ) {
			if ( isset( $frame['function'], $frame['object'] ) && 'set_role' === $frame['function'] && $frame['object'] instanceof WP_User ) {
				return (int) $frame['object']->get_site_id();
			}
		}
		return get_current_blog_id();
	}

	/**
	 * Whether one of these core functions is on the call stack: a fallback for housekeeping
	 * reached without its action (wp_uninitialize_site() called directly, wpmu_delete_blog()
	 * without dropping tables, which fires only deprecated actions).
	 *
	 * @param string[] $functions Function names.
	 * @return bool
	 */
	private static function inside( array $functions ) {
		// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_debug_backtrace -- housekeeping detection.
		foreach ( debug_backtrace( DEBUG_BACKTRACE_IGNORE_ARGS, 20 ) as $frame ) {
			if ( ! isset( $frame['class'] ) && isset( $frame['function'] ) && in_array( $frame['function'], $functions, true ) ) {
				return true;
			}
		}
		return false;
	}
}
