<?php
/**
 * The outbox: every event is a row in WordPress's own database from the moment it happens.
 *
 * A hook sent over HTTP can be lost (the functions are deploying, cold, unreachable). A row in
 * {base_prefix}wpmsync_outbox cannot, as long as the database keeps it: the shutdown sender
 * delivers it at once and deletes it when the functions acknowledge it; what is not acknowledged
 * stays and is tried again with backoff by WP-Cron, and the functions drain the table themselves
 * (their timer reads it straight from the database), so delivery needs neither WP-Cron nor HTTP.
 * Each row carries its event id: however many times it is delivered, the functions apply it once,
 * and in the order of the rows for one user.
 *
 * The table's definition is shared with wpmsync/outbox.py (a test compares both): whichever side
 * comes first creates it.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Rows of the outbox.
 */
final class Wpmsync_Outbox {

	/** Table name after the network's base prefix. */
	const TABLE = 'wpmsync_outbox';

	/** Seconds a fresh event waits for its own request's shutdown sender before anyone else may send it. */
	const GRACE_SECONDS = 60;

	/** Backoff after a failed try: 1, 2, 4 ... minutes, at most an hour. */
	const MAX_BACKOFF_SECONDS = 3600;

	/** WP-Cron event that retries what is due. */
	const CRON_HOOK = 'wpmsync_outbox_retry';

	/** Rows one WP-Cron run sends at most. */
	const RETRY_BATCH = 50;

	/** Answers that settle an event: 2xx, or a refusal the functions stored (a replay gets it back). */
	const FINAL_REFUSALS = array( 400, 404, 413 );

	/**
	 * @return string The table, with the network's base prefix.
	 */
	public static function table() {
		global $wpdb;
		return $wpdb->base_prefix . self::TABLE;
	}

	/**
	 * CREATE TABLE IF NOT EXISTS, word for word the definition of wpmsync/outbox.py.
	 */
	public static function create_table() {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared,WordPress.DB.DirectDatabaseQuery -- a table name; DDL.
		$wpdb->query(
			"CREATE TABLE IF NOT EXISTS `{$table}` ("
			. 'id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, '
			. 'event_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, '
			. 'event VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, '
			. 'network_id BIGINT UNSIGNED NOT NULL DEFAULT 1, '
			. 'user_id BIGINT UNSIGNED NOT NULL DEFAULT 0, '
			. 'blog_id BIGINT UNSIGNED NOT NULL DEFAULT 0, '
			. 'data LONGTEXT NOT NULL, '
			. 'created_at DATETIME NOT NULL, '
			. 'attempts INT UNSIGNED NOT NULL DEFAULT 0, '
			. 'next_try DATETIME NOT NULL, '
			. 'last_error VARCHAR(500) NULL, '
			. 'PRIMARY KEY (id), UNIQUE KEY event_id (event_id), KEY next_try (next_try), '
			. 'KEY user_event (user_id, id)) DEFAULT CHARSET=utf8mb4'
		);
	}

	/**
	 * Write an event now. Its own request sends it at shutdown; anyone else only after the grace.
	 *
	 * @param string $event Event name.
	 * @param array  $data  Event data.
	 * @return array{id:int,event_id:string} The row (id 0 when the database refused it: the
	 *                                       event is then only sent at shutdown, and logged).
	 */
	public function add( $event, array $data ) {
		global $wpdb;
		$event_id = wp_generate_uuid4(); // 36 chars of [0-9a-f-]: matches the functions' event id rule.
		$row      = array(
			'id'       => 0,
			'event_id' => $event_id,
		);
		$sql      = $wpdb->prepare(
			// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- the table name.
			'INSERT INTO `' . self::table() . '` (event_id, event, network_id, user_id, blog_id, data, created_at, next_try) '
			. 'VALUES (%s, %s, %d, %d, %d, %s, UTC_TIMESTAMP(), UTC_TIMESTAMP() + INTERVAL %d SECOND)',
			$event_id,
			$event,
			get_current_network_id(),
			isset( $data['user_id'] ) ? (int) $data['user_id'] : 0,
			isset( $data['blog_id'] ) ? (int) $data['blog_id'] : 0,
			(string) wp_json_encode( $data ),
			self::GRACE_SECONDS
		);
		$suppress = $wpdb->suppress_errors( true );
		// phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared,WordPress.DB.DirectDatabaseQuery -- prepared above.
		$done = $wpdb->query( $sql );
		if ( false === $done ) { // First event on this network (or after uninstall): make the table.
			self::create_table();
			// phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared,WordPress.DB.DirectDatabaseQuery -- prepared above.
			$done = $wpdb->query( $sql );
		}
		$wpdb->suppress_errors( $suppress );
		if ( false === $done ) {
			Wpmsync_Client::log( sprintf( 'event %s could not be written to the outbox: %s', $event, $wpdb->last_error ) );
			return $row;
		}
		$row['id'] = (int) $wpdb->insert_id;
		self::schedule( self::GRACE_SECONDS + 5 );
		return $row;
	}

	/**
	 * The same event with newer data (a new user pinned to the site it was created on).
	 *
	 * @param int    $id    Row.
	 * @param string $event Event name.
	 * @param array  $data  Event data.
	 */
	public function update( $id, $event, array $data ) {
		global $wpdb;
		if ( $id > 0 ) {
			// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- our own table.
			$wpdb->update(
				self::table(),
				array(
					'event'   => $event,
					'data'    => (string) wp_json_encode( $data ),
					'user_id' => isset( $data['user_id'] ) ? (int) $data['user_id'] : 0,
					'blog_id' => isset( $data['blog_id'] ) ? (int) $data['blog_id'] : 0,
				),
				array( 'id' => (int) $id )
			);
		}
	}

	/**
	 * Forget a row: acknowledged, or made pointless by a later event of the same request.
	 *
	 * @param int $id Row.
	 */
	public function delete( $id ) {
		global $wpdb;
		if ( $id > 0 ) {
			// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- our own table.
			$wpdb->delete( self::table(), array( 'id' => (int) $id ) );
		}
	}

	/**
	 * Settle a row after one try: deleted when acknowledged, else kept with its next try.
	 *
	 * @param int           $id     Row.
	 * @param true|WP_Error $result What sending it gave.
	 * @return bool Whether the functions acknowledged it.
	 */
	public function settle( $id, $result ) {
		global $wpdb;
		if ( self::acknowledged( $result ) ) {
			$this->delete( $id );
			return true;
		}
		if ( $id > 0 ) {
			$error = is_wp_error( $result ) ? $result->get_error_message() : 'not acknowledged';
			// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- our own table.
			$wpdb->query(
				$wpdb->prepare(
					// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- the table name.
					'UPDATE `' . self::table() . '` SET attempts = attempts + 1, last_error = %s, '
					. 'next_try = UTC_TIMESTAMP() + INTERVAL LEAST(%d, 60 * POW(2, LEAST(attempts, 11) - 1)) SECOND WHERE id = %d',
					substr( $error, 0, 500 ),
					self::MAX_BACKOFF_SECONDS,
					(int) $id
				)
			);
			self::schedule( 60 );
		}
		return false;
	}

	/**
	 * Whether an answer settles the event.
	 *
	 * @param true|WP_Error $result What sending it gave.
	 * @return bool
	 */
	public static function acknowledged( $result ) {
		if ( true === $result ) {
			return true;
		}
		if ( ! is_wp_error( $result ) ) {
			return false;
		}
		$data = $result->get_error_data();
		return is_array( $data ) && isset( $data['status'] ) && in_array( (int) $data['status'], self::FINAL_REFUSALS, true );
	}

	/**
	 * Rows whose next try is due, oldest first.
	 *
	 * @param int $limit At most this many.
	 * @return array<int,object{id:string,event_id:string,event:string,user_id:string,data:string}>
	 */
	public function due( $limit ) {
		global $wpdb;
		$suppress = $wpdb->suppress_errors( true );
		$rows     = $wpdb->get_results(
			$wpdb->prepare(
				// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- the table name.
				'SELECT id, event_id, event, user_id, data FROM `' . self::table() . '` WHERE network_id = %d AND next_try <= UTC_TIMESTAMP() ORDER BY id LIMIT %d',
				get_current_network_id(),
				(int) $limit
			)
		);
		$wpdb->suppress_errors( $suppress );
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * How the outbox stands, for the screens: rows waiting, the oldest one's age, the last error.
	 *
	 * @return array{pending:int,oldest_seconds:int,failing:int,last_error:string}
	 */
	public static function stats() {
		global $wpdb;
		$suppress = $wpdb->suppress_errors( true );
		$row      = $wpdb->get_row(
			// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- the table name.
			$wpdb->prepare(
				// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- the table name.
				'SELECT COUNT(*) AS pending, COALESCE(TIMESTAMPDIFF(SECOND, MIN(created_at), UTC_TIMESTAMP()), 0) AS oldest, '
				. 'COALESCE(SUM(attempts > 0), 0) AS failing FROM `' . self::table() . '` WHERE network_id = %d',
				get_current_network_id()
			)
		);
		$error    = $row && (int) $row->failing > 0 ? $wpdb->get_var(
			// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- the table name.
			$wpdb->prepare(
				// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- the table name.
				'SELECT last_error FROM `' . self::table() . '` WHERE network_id = %d AND attempts > 0 ORDER BY id DESC LIMIT 1',
				get_current_network_id()
			)
		) : '';
		$wpdb->suppress_errors( $suppress );
		return array(
			'pending'        => $row ? (int) $row->pending : 0,
			'oldest_seconds' => $row ? (int) $row->oldest : 0,
			'failing'        => $row ? (int) $row->failing : 0,
			'last_error'     => (string) $error,
		);
	}

	/**
	 * Make sure WP-Cron looks at the outbox again.
	 *
	 * @param int $delay Seconds from now.
	 */
	public static function schedule( $delay ) {
		if ( ! wp_next_scheduled( self::CRON_HOOK ) ) {
			wp_schedule_single_event( time() + max( 1, (int) $delay ), self::CRON_HOOK );
		}
	}
}
