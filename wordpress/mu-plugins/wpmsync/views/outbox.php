<?php
/**
 * WordPress's events not yet applied by the sync service (the outbox, Wpmsync_Outbox::stats()).
 *
 * They are kept in WordPress's own database until the functions acknowledge them; WP-Cron
 * retries them and the sync service's timer applies them straight from the database.
 *
 * @package wpmsync
 * @var array{pending:int,oldest_seconds:int,failing:int,last_error:string} $outbox
 */

defined( 'ABSPATH' ) || exit;
?>
<div class="wpmsync-outbox" id="wpmsync-outbox">
<?php if ( $outbox['pending'] > 0 ) : ?>
	<div class="notice notice-warning inline"><p>
	<?php
	echo esc_html(
		sprintf(
			/* translators: 1: number of events, 2: how long ago the oldest one happened (e.g. "5 mins"). */
			_n(
				'%1$s change made in WordPress is waiting for the sync service (oldest: %2$s ago). It is kept and applied once the service answers.',
				'%1$s changes made in WordPress are waiting for the sync service (oldest: %2$s ago). They are kept and applied once the service answers.',
				$outbox['pending'],
				'wpmsync'
			),
			number_format_i18n( $outbox['pending'] ),
			human_time_diff( time() - $outbox['oldest_seconds'] )
		)
	);
	?>
	</p>
	<?php if ( $outbox['failing'] > 0 && '' !== $outbox['last_error'] ) : ?>
		<p>
		<?php
		/* translators: %s: the last error met while sending an event. */
		echo esc_html( sprintf( __( 'Last error: %s', 'wpmsync' ), $outbox['last_error'] ) );
		?>
		</p>
	<?php endif; ?>
	</div>
<?php else : ?>
	<p><?php esc_html_e( 'Every change made in WordPress has reached the sync service.', 'wpmsync' ); ?></p>
<?php endif; ?>
</div>
