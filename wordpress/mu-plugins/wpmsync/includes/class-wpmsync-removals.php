<?php
/**
 * Removals recorded where they happen: in the PHP plugin's own usermeta wpmus_removed_from_blogs.
 *
 * A person who removes a user from a site decides that the user stays off it. The record is
 * written in the same request, before core deletes the membership rows, so no automatic sync can
 * add the user back even if the event never reaches the functions. Adding the user back by hand
 * forgets it. The read-modify-write holds the same named lock of the user's id bucket as every
 * writer of the functions (wpmsync/db.py lock_name and user_locks: one name, both languages;
 * a test compares them), so neither side overwrites the other's change of the record.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * The removal record of one user.
 */
final class Wpmsync_Removals {

	/** The PHP plugin's key: a serialized array of blog ids. */
	const META_KEY = 'wpmus_removed_from_blogs';

	/** User ids per named lock, as LOCK_BUCKET in wpmsync/db.py. */
	const LOCK_BUCKET = 256;

	/** Seconds to wait for the functions to finish writing this user's rows. */
	const LOCK_TIMEOUT = 10;

	/**
	 * The named lock the functions hold while writing a user's rows.
	 *
	 * @param int $user_id User.
	 * @return string
	 */
	public static function lock_name( $user_id ) {
		global $wpdb;
		$digest = substr( sha1( $wpdb->dbname . "\0" . $wpdb->base_prefix ), 0, 16 );
		return substr( 'wpmsync:' . $digest . ':users:' . intdiv( (int) $user_id, self::LOCK_BUCKET ), 0, 64 );
	}

	/**
	 * Remember that the user was removed from the site on purpose.
	 *
	 * @param int $user_id User.
	 * @param int $blog_id Site.
	 */
	public static function record( $user_id, $blog_id ) {
		self::change( (int) $user_id, (int) $blog_id, true );
	}

	/**
	 * The user was added back by hand: forget the removal.
	 *
	 * @param int $user_id User.
	 * @param int $blog_id Site.
	 */
	public static function forget( $user_id, $blog_id ) {
		self::change( (int) $user_id, (int) $blog_id, false );
	}

	/**
	 * The blog ids recorded for a user, read from the database (not the object cache: the
	 * functions write the record too).
	 *
	 * @param int $user_id User.
	 * @return int[]
	 */
	public static function blog_ids( $user_id ) {
		global $wpdb;
		$raw  = $wpdb->get_var(
			$wpdb->prepare(
				"SELECT meta_value FROM {$wpdb->usermeta} WHERE user_id = %d AND meta_key = %s ORDER BY umeta_id LIMIT 1",
				(int) $user_id,
				self::META_KEY
			)
		);
		$list = is_string( $raw ) ? maybe_unserialize( $raw ) : array();
		$ids  = array();
		foreach ( is_array( $list ) ? $list : array() as $value ) {
			$value = is_numeric( $value ) ? (int) $value : 0;
			if ( $value > 0 && ! in_array( $value, $ids, true ) ) {
				$ids[] = $value;
			}
		}
		return $ids;
	}

	/**
	 * Add or drop one blog id, under the user's lock.
	 *
	 * @param int  $user_id User.
	 * @param int  $blog_id Site.
	 * @param bool $add     Record (true) or forget (false).
	 */
	private static function change( $user_id, $blog_id, $add ) {
		global $wpdb;
		if ( $user_id <= 0 || $blog_id <= 0 ) {
			return;
		}
		$lock = self::lock_name( $user_id );
		$got  = $wpdb->get_var( $wpdb->prepare( 'SELECT GET_LOCK(%s, %d)', $lock, self::LOCK_TIMEOUT ) );
		if ( '1' !== (string) $got ) { // Written anyway: a removal must never go unrecorded.
			Wpmsync_Client::log( sprintf( 'removal record of user %d written without the lock (busy)', $user_id ) );
		}
		try {
			$before = self::blog_ids( $user_id );
			$after  = $add ? array_values( array_unique( array_merge( $before, array( $blog_id ) ) ) )
				: array_values( array_diff( $before, array( $blog_id ) ) );
			if ( $after === $before ) {
				return;
			}
			wp_cache_delete( $user_id, 'user_meta' ); // update_user_meta must see the rows as they are.
			if ( $after ) {
				update_user_meta( $user_id, self::META_KEY, $after );
			} else {
				delete_user_meta( $user_id, self::META_KEY );
			}
		} finally {
			if ( '1' === (string) $got ) {
				$wpdb->query( $wpdb->prepare( 'SELECT RELEASE_LOCK(%s)', $lock ) );
			}
		}
	}
}
