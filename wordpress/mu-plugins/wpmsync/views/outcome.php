<?php
/**
 * What a bulk sync, unsync or undo did (or, for a preview, would do), from the functions' answer:
 * per site the counts and the first user ids, then the skipped pairs with their reasons, and the
 * journal id of a real change with its undo buttons.
 *
 * @package wpmsync
 * @var array $wpmsync_outcome {dry_run: bool, data: array} The answer of the functions.
 */

defined( 'ABSPATH' ) || exit;

$wpmsync_data    = $wpmsync_outcome['data'];
$wpmsync_counted = array(
	'added'         => __( 'Added', 'wpmsync' ),
	'removed'       => __( 'Removed', 'wpmsync' ),
	'restored'      => __( 'Restored', 'wpmsync' ),
	'roles_set'     => __( 'Roles set', 'wpmsync' ),
	'rows_restored' => __( 'Rows restored', 'wpmsync' ),
	'conflicts'     => __( 'Conflicts', 'wpmsync' ),
);
$wpmsync_sites   = isset( $wpmsync_data['sites'] ) && is_array( $wpmsync_data['sites'] ) ? $wpmsync_data['sites'] : array();
$wpmsync_skipped = isset( $wpmsync_data['skipped'] ) && is_array( $wpmsync_data['skipped'] ) ? $wpmsync_data['skipped'] : array();
$wpmsync_columns = array();
$wpmsync_has_ids = false;
foreach ( $wpmsync_sites as $wpmsync_entry ) {
	$wpmsync_has_ids = $wpmsync_has_ids || ( is_array( $wpmsync_entry ) && ! empty( $wpmsync_entry['user_ids'] ) );
	foreach ( array_keys( $wpmsync_counted ) as $wpmsync_key ) {
		if ( is_array( $wpmsync_entry ) && isset( $wpmsync_entry[ $wpmsync_key ] ) ) {
			$wpmsync_columns[ $wpmsync_key ] = $wpmsync_counted[ $wpmsync_key ];
		}
	}
}
$wpmsync_totals = array();
foreach ( array( 'added', 'removed', 'restored', 'conflicts' ) as $wpmsync_key ) {
	if ( isset( $wpmsync_data[ $wpmsync_key ] ) && is_numeric( $wpmsync_data[ $wpmsync_key ] ) ) {
		$wpmsync_totals[] = $wpmsync_counted[ $wpmsync_key ] . ': ' . number_format_i18n( (int) $wpmsync_data[ $wpmsync_key ] );
	} else {
		$wpmsync_sum = 0;
		foreach ( $wpmsync_sites as $wpmsync_entry ) {
			$wpmsync_sum += is_array( $wpmsync_entry ) && isset( $wpmsync_entry[ $wpmsync_key ] ) ? (int) $wpmsync_entry[ $wpmsync_key ] : 0;
		}
		if ( $wpmsync_sum ) {
			$wpmsync_totals[] = $wpmsync_counted[ $wpmsync_key ] . ': ' . number_format_i18n( $wpmsync_sum );
		}
	}
}
$wpmsync_job = isset( $wpmsync_data['job_id'] ) && is_scalar( $wpmsync_data['job_id'] ) ? (string) $wpmsync_data['job_id'] : '';
?>
<div id="wpmsync-outcome" class="wpmsync-outcome card" style="max-width: none;" data-dry-run="<?php echo esc_attr( $wpmsync_outcome['dry_run'] ? '1' : '0' ); ?>">
	<h2>
		<?php
		echo esc_html( $wpmsync_outcome['dry_run'] ? __( 'Preview (nothing changed)', 'wpmsync' ) : __( 'Result', 'wpmsync' ) );
		?>
	</h2>
	<p id="wpmsync-outcome-totals"><?php echo esc_html( $wpmsync_totals ? implode( ' · ', $wpmsync_totals ) : __( 'Nothing to change.', 'wpmsync' ) ); ?></p>
	<?php if ( $wpmsync_sites ) : ?>
		<table class="widefat striped" id="wpmsync-outcome-sites">
			<thead>
				<tr>
					<th scope="col"><?php esc_html_e( 'Site', 'wpmsync' ); ?></th>
					<?php foreach ( $wpmsync_columns as $wpmsync_label ) : ?>
						<th scope="col"><?php echo esc_html( $wpmsync_label ); ?></th>
					<?php endforeach; ?>
					<?php if ( $wpmsync_has_ids ) : ?>
						<th scope="col"><?php esc_html_e( 'Users (first ids)', 'wpmsync' ); ?></th>
					<?php endif; ?>
				</tr>
			</thead>
			<tbody>
				<?php foreach ( $wpmsync_sites as $wpmsync_blog => $wpmsync_entry ) : ?>
					<?php
					$wpmsync_entry = is_array( $wpmsync_entry ) ? $wpmsync_entry : array();
					$wpmsync_site  = get_site( (int) $wpmsync_blog );
					?>
					<tr data-blog-id="<?php echo esc_attr( (string) (int) $wpmsync_blog ); ?>">
						<td>
							<?php
							if ( $wpmsync_site ) {
								echo esc_html( Wpmsync_Admin::site_label( $wpmsync_site ) );
							} elseif ( 0 === (int) $wpmsync_blog ) {
								esc_html_e( 'Network-wide rows (no site)', 'wpmsync' );
							} else {
								echo esc_html( (string) (int) $wpmsync_blog );
							}
							?>
						</td>
						<?php foreach ( array_keys( $wpmsync_columns ) as $wpmsync_key ) : ?>
							<td class="<?php echo esc_attr( 'wpmsync-' . $wpmsync_key ); ?>"><?php echo esc_html( isset( $wpmsync_entry[ $wpmsync_key ] ) ? number_format_i18n( (int) $wpmsync_entry[ $wpmsync_key ] ) : '' ); ?></td>
						<?php endforeach; ?>
						<?php if ( $wpmsync_has_ids ) : ?>
							<td>
								<?php
								$wpmsync_ids = isset( $wpmsync_entry['user_ids'] ) && is_array( $wpmsync_entry['user_ids'] ) ? array_map( 'intval', $wpmsync_entry['user_ids'] ) : array();
								echo esc_html( implode( ', ', $wpmsync_ids ) );
								?>
							</td>
						<?php endif; ?>
					</tr>
				<?php endforeach; ?>
			</tbody>
		</table>
	<?php endif; ?>
	<?php if ( $wpmsync_skipped ) : ?>
		<h3><?php esc_html_e( 'Skipped', 'wpmsync' ); ?></h3>
		<ul id="wpmsync-outcome-skipped" class="ul-disc">
			<?php foreach ( array_slice( $wpmsync_skipped, 0, 50 ) as $wpmsync_skip ) : ?>
				<?php
				$wpmsync_skip  = is_array( $wpmsync_skip ) ? $wpmsync_skip : array();
				$wpmsync_where = array();
				if ( isset( $wpmsync_skip['user_id'] ) ) {
					/* translators: %d: user id. */
					$wpmsync_where[] = sprintf( __( 'user %d', 'wpmsync' ), (int) $wpmsync_skip['user_id'] );
				}
				if ( isset( $wpmsync_skip['blog_id'] ) ) {
					/* translators: %d: site id. */
					$wpmsync_where[] = sprintf( __( 'site %d', 'wpmsync' ), (int) $wpmsync_skip['blog_id'] );
				}
				$wpmsync_reason = isset( $wpmsync_skip['reason'] ) && is_scalar( $wpmsync_skip['reason'] ) ? (string) $wpmsync_skip['reason'] : '';
				?>
				<li><?php echo esc_html( ( $wpmsync_where ? implode( ', ', $wpmsync_where ) . ': ' : '' ) . $wpmsync_reason ); ?></li>
			<?php endforeach; ?>
			<?php if ( count( $wpmsync_skipped ) > 50 ) : ?>
				<li>
					<?php
					/* translators: %d: number of further skipped items. */
					echo esc_html( sprintf( __( 'and %d more', 'wpmsync' ), count( $wpmsync_skipped ) - 50 ) );
					?>
				</li>
			<?php endif; ?>
		</ul>
	<?php endif; ?>
	<?php if ( ! $wpmsync_outcome['dry_run'] && Wpmsync_Journal_Screen::valid_change_id( $wpmsync_job ) ) : ?>
		<p>
			<?php
			/* translators: %s: id of the change in the undo journal. */
			echo esc_html( sprintf( __( 'Journal id of this change: %s', 'wpmsync' ), $wpmsync_job ) );
			?>
			<code id="wpmsync-outcome-job" hidden><?php echo esc_html( $wpmsync_job ); ?></code>
		</p>
		<?php
		if ( current_user_can( Wpmsync_Journal_Screen::CAPABILITY ) && current_user_can( Wpmsync_Journal_Screen::UNDO_CAPABILITY ) ) {
			Wpmsync_Journal_Screen::render_undo_form( $wpmsync_job );
		}
		?>
	<?php endif; ?>
</div>
