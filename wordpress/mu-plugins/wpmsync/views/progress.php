<?php
/**
 * Progress of one job: a <progress> bar and a status line, updated by assets/wpmsync-progress.js
 * through the admin-ajax proxy (the nonce is bound to this job id).
 *
 * @package wpmsync
 * @var string $job_id 32 hex characters.
 * @var int    $total  Batches known so far (at least 1).
 */

defined( 'ABSPATH' ) || exit;
?>
<div id="wpmsync-job" class="wpmsync-job"
	data-job-id="<?php echo esc_attr( $job_id ); ?>"
	data-nonce="<?php echo esc_attr( wp_create_nonce( 'wpmsync_job_' . $job_id ) ); ?>"
	data-ajax-url="<?php echo esc_url( admin_url( 'admin-ajax.php' ) ); ?>"
	data-action="<?php echo esc_attr( Wpmsync_Admin::AJAX_ACTION ); ?>">
	<h2><?php esc_html_e( 'Job progress', 'wpmsync' ); ?></h2>
	<p>
		<progress id="wpmsync-progress" max="<?php echo esc_attr( (string) $total ); ?>" value="0" style="width: 100%; max-width: 40em;"></progress>
	</p>
	<p>
		<strong id="wpmsync-job-state" role="status" aria-live="polite"><?php esc_html_e( 'queued', 'wpmsync' ); ?></strong>
		<br /><small>
		<?php
		/* translators: %s: job id. */
		echo esc_html( sprintf( __( 'Job %s', 'wpmsync' ), $job_id ) );
		?>
		</small>
	</p>
</div>
