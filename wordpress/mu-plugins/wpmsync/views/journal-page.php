<?php
/**
 * Network Admin → Settings → User sync journal.
 *
 * @package wpmsync
 * @var Wpmsync_Notices $notices  Notices of this response.
 * @var array[]         $changes  Recent changes: job_id, trigger, created_at, rows, undone_by, undo_of.
 * @var array|null      $outcome  {dry_run, data} of the undo just made.
 * @var bool            $can_undo Whether the admin may undo.
 * @var bool            $queued   Whether the undo just asked for was queued.
 */

defined( 'ABSPATH' ) || exit;

$wpmsync_tab = Wpmsync_Journal_Screen::SLUG;
?>
<div class="wrap">
	<h1><?php esc_html_e( 'User sync journal', 'wpmsync' ); ?></h1>
	<?php require __DIR__ . '/tabs.php'; ?>
	<?php $notices->render(); ?>
	<?php if ( $queued ) : ?>
		<p><a class="button" id="wpmsync-journal-reload" href="<?php echo esc_url( Wpmsync_Journal_Screen::url() ); ?>"><?php esc_html_e( 'Reload the journal', 'wpmsync' ); ?></a></p>
	<?php endif; ?>
	<?php
	if ( $outcome ) {
		$wpmsync_outcome = $outcome;
		require __DIR__ . '/outcome.php';
	}
	?>
	<p><?php esc_html_e( 'Every change the sync service makes to memberships is recorded, so it can be undone: undo puts back the rows the change added or removed. Rows changed again since are left alone and reported as conflicts. Preview first to see what an undo would do.', 'wpmsync' ); ?></p>
	<table class="widefat striped" id="wpmsync-journal">
		<thead>
			<tr>
				<th scope="col"><?php esc_html_e( 'When', 'wpmsync' ); ?></th>
				<th scope="col"><?php esc_html_e( 'Change', 'wpmsync' ); ?></th>
				<th scope="col"><?php esc_html_e( 'Trigger', 'wpmsync' ); ?></th>
				<th scope="col"><?php esc_html_e( 'Rows', 'wpmsync' ); ?></th>
				<th scope="col"><?php esc_html_e( 'Status', 'wpmsync' ); ?></th>
				<th scope="col"><?php esc_html_e( 'Actions', 'wpmsync' ); ?></th>
			</tr>
		</thead>
		<tbody>
			<?php if ( ! $changes ) : ?>
				<tr><td colspan="6"><?php esc_html_e( 'No changes recorded yet.', 'wpmsync' ); ?></td></tr>
			<?php endif; ?>
			<?php foreach ( $changes as $wpmsync_change ) : ?>
				<tr id="<?php echo esc_attr( 'wpmsync-change-' . $wpmsync_change['job_id'] ); ?>" data-job-id="<?php echo esc_attr( $wpmsync_change['job_id'] ); ?>">
					<td><?php echo esc_html( Wpmsync_Journal_Screen::when( $wpmsync_change['created_at'] ) ); ?></td>
					<td><code><?php echo esc_html( $wpmsync_change['job_id'] ); ?></code></td>
					<td style="word-break: break-word;"><?php echo esc_html( $wpmsync_change['trigger'] ); ?></td>
					<td><?php echo esc_html( number_format_i18n( $wpmsync_change['rows'] ) ); ?></td>
					<td class="wpmsync-change-status">
						<?php
						if ( '' !== $wpmsync_change['undone_by'] ) {
							/* translators: %s: id of the undo. */
							echo esc_html( sprintf( __( 'undone by %s', 'wpmsync' ), $wpmsync_change['undone_by'] ) );
						} elseif ( '' !== $wpmsync_change['undo_of'] ) {
							/* translators: %s: id of the change this one undid. */
							echo esc_html( sprintf( __( 'undo of %s', 'wpmsync' ), $wpmsync_change['undo_of'] ) );
						} else {
							esc_html_e( 'applied', 'wpmsync' );
						}
						?>
					</td>
					<td style="white-space: nowrap;">
						<?php
						if ( $can_undo && '' === $wpmsync_change['undone_by'] ) {
							Wpmsync_Journal_Screen::render_undo_form( $wpmsync_change['job_id'] );
						}
						?>
					</td>
				</tr>
			<?php endforeach; ?>
		</tbody>
	</table>
</div>
