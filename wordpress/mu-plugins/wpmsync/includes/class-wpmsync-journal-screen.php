<?php
/**
 * Network Admin → Settings → User sync journal (settings.php?page=wpmsync-journal): the recent
 * changes the functions recorded in their undo journal (GET {endpoint}/journal?limit=20), each
 * with "Preview undo" and "Undo" (POST {endpoint}/jobs/{id}/undo {"dry_run": bool}). A small undo
 * is done inline and its outcome shown; a large one is queued by the functions (202), and the
 * journal shows the change as undone once the last range is done.
 *
 * The undo buttons shown next to a bulk change (and linked from the user screen) post here too,
 * so undoing is handled in one place. Each undo form carries a nonce bound to its change id: a
 * page can only undo the change it shows. Viewing needs manage_network_options (it is a
 * Settings page); undoing changes memberships, so it needs manage_network_users as well.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * The undo journal screen.
 */
final class Wpmsync_Journal_Screen extends Wpmsync_Screen {

	const PARENT_FILE     = 'settings.php';
	const SLUG            = 'wpmsync-journal';
	const CAPABILITY      = 'manage_network_options';
	const UNDO_CAPABILITY = 'manage_network_users';
	const LIMIT           = 20;

	/** @var array|null {dry_run, data} of the undo made in this request. */
	private $outcome;

	/** @var bool Whether the undo made in this request was queued (202). */
	private $queued = false;

	/** @return string Network Admin → Settings → User sync journal. */
	protected function title() {
		return __( 'User sync journal', 'wpmsync' );
	}

	/**
	 * @param string $id Candidate change id.
	 * @return bool Whether it looks like an id the functions hand out (safe in a URL path).
	 */
	public static function valid_change_id( $id ) {
		return is_string( $id ) && 1 === preg_match( '/^[0-9A-Za-z_-]{8,64}$/', $id );
	}

	/**
	 * POST: undo (or preview the undo of) one change. The nonce is bound to the change id, so
	 * the id is validated first; undoing also needs UNDO_CAPABILITY.
	 */
	protected function handle_post() {
		// phpcs:ignore WordPress.Security.NonceVerification.Missing -- validated, then the nonce bound to it is checked.
		$job_id = isset( $_POST['wpmsync_job_id'] ) ? sanitize_text_field( wp_unslash( $_POST['wpmsync_job_id'] ) ) : '';
		if ( ! self::valid_change_id( $job_id ) ) {
			wp_die( esc_html__( 'Unknown change.', 'wpmsync' ), 400 );
		}
		check_admin_referer( 'wpmsync_undo_' . $job_id );
		if ( ! current_user_can( self::UNDO_CAPABILITY ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to undo changes of memberships.', 'wpmsync' ), 403 );
		}
		// phpcs:ignore WordPress.Security.NonceVerification.Missing -- checked just above.
		$dry_run = isset( $_POST['wpmsync_action'] ) && 'preview_undo' === sanitize_key( wp_unslash( $_POST['wpmsync_action'] ) );
		$answer  = $this->client->call( 'POST', 'jobs/' . rawurlencode( $job_id ) . '/undo', array( 'dry_run' => $dry_run ) );
		if ( is_wp_error( $answer ) ) {
			$this->notices->add( 'error', $answer->get_error_message() );
			return;
		}
		if ( 202 === $answer['status'] && $dry_run ) {
			// A preview over more rows than one batch: the functions prepare it through their queue.
			$this->notices->add(
				'info',
				sprintf(
					/* translators: 1: change id, 2: id of the preview job. */
					__( 'The preview of undoing %1$s is too large for one request: the sync service prepares it in the background as job %2$s. Nothing is changed; its result appears in that job\'s status.', 'wpmsync' ),
					$job_id,
					isset( $answer['data']['job_id'] ) && is_scalar( $answer['data']['job_id'] ) ? (string) $answer['data']['job_id'] : '?'
				)
			);
			return;
		}
		if ( 202 === $answer['status'] ) {
			// More rows than one batch: the functions undo it through their queue, range by range.
			$this->queued = true;
			$this->notices->add(
				'success',
				sprintf(
					/* translators: 1: change id, 2: number of rows, 3: id of the undo. */
					__( 'Undo of %1$s queued (%2$s rows): it runs in the background as change %3$s. Reload this page to see the change marked as undone.', 'wpmsync' ),
					$job_id,
					number_format_i18n( isset( $answer['data']['rows'] ) ? (int) $answer['data']['rows'] : 0 ),
					isset( $answer['data']['job_id'] ) && is_scalar( $answer['data']['job_id'] ) ? (string) $answer['data']['job_id'] : '?'
				)
			);
			return;
		}
		$this->outcome = array(
			'dry_run' => $dry_run,
			'data'    => $answer['data'],
		);
		$restored = isset( $answer['data']['restored'] ) ? (int) $answer['data']['restored'] : 0;
		if ( $dry_run ) {
			/* translators: 1: change id, 2: number of rows. */
			$message = sprintf( __( 'Preview of undoing %1$s: nothing was changed; %2$s rows would be restored.', 'wpmsync' ), $job_id, number_format_i18n( $restored ) );
		} else {
			/* translators: 1: change id, 2: number of rows. */
			$message = sprintf( __( 'Change %1$s undone: %2$s rows restored.', 'wpmsync' ), $job_id, number_format_i18n( $restored ) );
		}
		$this->notices->add( $dry_run ? 'info' : 'success', $message );
		if ( ! empty( $answer['data']['conflicts'] ) ) {
			$this->notices->add(
				'warning',
				/* translators: %s: number of conflicts. */
				sprintf( __( '%s rows were changed again since and were left as they are (see Skipped).', 'wpmsync' ), number_format_i18n( (int) $answer['data']['conflicts'] ) )
			);
		}
	}

	/**
	 * The two undo buttons of one change (a form of their own, posting to this page).
	 *
	 * @param string $job_id Valid change id.
	 */
	public static function render_undo_form( $job_id ) {
		if ( ! self::valid_change_id( $job_id ) ) {
			return;
		}
		?>
		<form method="post" action="<?php echo esc_url( self::url() ); ?>" class="wpmsync-undo-form" style="display: inline;">
			<?php wp_nonce_field( 'wpmsync_undo_' . $job_id ); ?>
			<input type="hidden" name="wpmsync_job_id" value="<?php echo esc_attr( $job_id ); ?>" />
			<button type="submit" class="button wpmsync-preview-undo" name="wpmsync_action" value="preview_undo" data-job-id="<?php echo esc_attr( $job_id ); ?>"><?php esc_html_e( 'Preview undo', 'wpmsync' ); ?></button>
			<button type="submit" class="button wpmsync-undo" name="wpmsync_action" value="undo" data-job-id="<?php echo esc_attr( $job_id ); ?>"><?php esc_html_e( 'Undo', 'wpmsync' ); ?></button>
		</form>
		<?php
	}

	/**
	 * The recent changes, newest first.
	 *
	 * @return array[]|WP_Error
	 */
	private function changes() {
		$answer = $this->client->call( 'GET', 'journal?limit=' . self::LIMIT );
		if ( is_wp_error( $answer ) ) {
			return $answer;
		}
		$changes = isset( $answer['data']['changes'] ) && is_array( $answer['data']['changes'] ) ? $answer['data']['changes'] : array();
		$out     = array();
		foreach ( $changes as $change ) {
			if ( ! is_array( $change ) || ! isset( $change['job_id'] ) || ! self::valid_change_id( (string) $change['job_id'] ) ) {
				continue;
			}
			$out[] = array(
				'job_id'     => (string) $change['job_id'],
				'trigger'    => isset( $change['trigger'] ) && is_scalar( $change['trigger'] ) ? (string) $change['trigger'] : '',
				'created_at' => isset( $change['created_at'] ) && is_scalar( $change['created_at'] ) ? (string) $change['created_at'] : '',
				'rows'       => isset( $change['rows'] ) ? (int) $change['rows'] : 0,
				'undone_by'  => isset( $change['undone_by'] ) && is_scalar( $change['undone_by'] ) ? (string) $change['undone_by'] : '',
				'undo_of'    => isset( $change['undo_of'] ) && is_scalar( $change['undo_of'] ) ? (string) $change['undo_of'] : '',
			);
		}
		return $out;
	}

	/**
	 * @param string $iso ISO 8601 time from the functions.
	 * @return string The time in the site's format and timezone, or the text as it came.
	 */
	public static function when( $iso ) {
		$time = strtotime( $iso );
		if ( false === $time ) {
			return $iso;
		}
		return wp_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), $time );
	}

	/** The page. */
	protected function render_page() {
		$changes = $this->changes();
		if ( is_wp_error( $changes ) ) {
			$this->notices->add(
				'error',
				/* translators: %s: error message. */
				sprintf( __( 'Could not read the journal: %s', 'wpmsync' ), $changes->get_error_message() )
			);
			$changes = array();
		}
		$notices  = $this->notices;
		$outcome  = $this->outcome;
		$can_undo = current_user_can( self::UNDO_CAPABILITY );
		$queued   = $this->queued;
		require dirname( __DIR__ ) . '/views/journal-page.php';
	}
}
