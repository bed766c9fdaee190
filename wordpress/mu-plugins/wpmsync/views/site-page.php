<?php
/**
 * Users → Network user sync, on each site.
 *
 * @package wpmsync
 * @var Wpmsync_Admin $this     The screen.
 * @var string        $page_url This page.
 */

defined( 'ABSPATH' ) || exit;
?>
<div class="wrap">
	<h1><?php esc_html_e( 'Network user sync', 'wpmsync' ); ?></h1>
	<?php $this->render_notices(); ?>
	<?php $this->render_progress(); ?>
	<p><?php esc_html_e( 'Add every user of the network to this site, with its default role. Existing members keep their roles; users removed from this site on purpose stay removed.', 'wpmsync' ); ?></p>
	<form method="post" action="<?php echo esc_url( $page_url ); ?>">
		<?php wp_nonce_field( 'wpmsync_pull_users' ); ?>
		<input type="hidden" name="wpmsync_action" value="pull_users" />
		<button type="submit" class="button button-primary" id="wpmsync-pull-users"><?php esc_html_e( 'Add all network users to this site', 'wpmsync' ); ?></button>
	</form>
</div>
