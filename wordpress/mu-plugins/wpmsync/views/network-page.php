<?php
/**
 * Network Admin → Settings → User sync.
 *
 * @package wpmsync
 * @var Wpmsync_Admin      $this     The screen.
 * @var array<string,bool> $settings Current trigger switches.
 * @var WP_Site[]          $sites    Live sites of the network.
 * @var string             $page_url This page.
 */

defined( 'ABSPATH' ) || exit;

$wpmsync_switches = array(
	'new_user'  => array( 'wpmsync-new-user', __( 'New users', 'wpmsync' ), __( 'Add every new user to every site of the network.', 'wpmsync' ) ),
	'new_site'  => array( 'wpmsync-new-site', __( 'New sites', 'wpmsync' ), __( 'Add every network user to each new site, with its default role.', 'wpmsync' ) ),
	'role_sync' => array( 'wpmsync-role-sync', __( 'Role sync', 'wpmsync' ), __( 'When a user\'s role changes on one site, set it on the user\'s other sites too.', 'wpmsync' ) ),
);
?>
<div class="wrap">
	<h1><?php esc_html_e( 'User sync', 'wpmsync' ); ?></h1>
	<?php
	$wpmsync_tab = Wpmsync_Admin::NETWORK_SLUG;
	require __DIR__ . '/tabs.php';
	?>
	<?php $this->render_notices(); ?>
	<?php $this->render_progress(); ?>
	<?php $this->render_outbox(); ?>

	<h2><?php esc_html_e( 'Triggers', 'wpmsync' ); ?></h2>
	<form method="post" action="<?php echo esc_url( $page_url ); ?>">
		<?php wp_nonce_field( 'wpmsync_save_settings' ); ?>
		<input type="hidden" name="wpmsync_action" value="save_settings" />
		<table class="form-table" role="presentation">
			<?php foreach ( $wpmsync_switches as $wpmsync_name => $wpmsync_switch ) : ?>
				<tr>
					<th scope="row"><label for="<?php echo esc_attr( $wpmsync_switch[0] ); ?>"><?php echo esc_html( $wpmsync_switch[1] ); ?></label></th>
					<td>
						<label>
							<input type="checkbox" id="<?php echo esc_attr( $wpmsync_switch[0] ); ?>" name="<?php echo esc_attr( 'wpmsync_' . $wpmsync_name ); ?>" value="on" <?php checked( ! empty( $settings[ $wpmsync_name ] ) ); ?> />
							<?php echo esc_html( $wpmsync_switch[2] ); ?>
						</label>
					</td>
				</tr>
			<?php endforeach; ?>
		</table>
		<p class="submit">
			<button type="submit" class="button button-primary" id="wpmsync-save-settings"><?php esc_html_e( 'Save triggers', 'wpmsync' ); ?></button>
		</p>
	</form>

	<h2><?php esc_html_e( 'Sync from scratch', 'wpmsync' ); ?></h2>
	<p><?php esc_html_e( 'Every live site receives every network user it does not have yet, with its default role. Existing memberships and roles are never changed; users removed from a site on purpose stay removed.', 'wpmsync' ); ?></p>
	<form method="post" action="<?php echo esc_url( $page_url ); ?>">
		<?php wp_nonce_field( 'wpmsync_sync_all' ); ?>
		<input type="hidden" name="wpmsync_action" value="sync_all" />
		<button type="submit" class="button" id="wpmsync-sync-all"><?php esc_html_e( 'Sync from scratch', 'wpmsync' ); ?></button>
	</form>

	<h2><?php esc_html_e( 'Sync selected sites', 'wpmsync' ); ?></h2>
	<form method="post" action="<?php echo esc_url( $page_url ); ?>">
		<?php wp_nonce_field( 'wpmsync_sync_selected' ); ?>
		<input type="hidden" name="wpmsync_action" value="sync_selected" />
		<p>
			<label for="wpmsync-sites"><?php esc_html_e( 'Sites (hold Ctrl or Cmd to pick several):', 'wpmsync' ); ?></label><br />
			<select id="wpmsync-sites" name="wpmsync_sites[]" multiple="multiple" size="<?php echo esc_attr( (string) min( 12, max( 4, count( $sites ) ) ) ); ?>" style="min-width: 24em;">
				<?php foreach ( $sites as $wpmsync_site ) : ?>
					<option value="<?php echo esc_attr( (string) $wpmsync_site->blog_id ); ?>">
						<?php echo esc_html( Wpmsync_Admin::site_label( $wpmsync_site ) ); ?>
					</option>
				<?php endforeach; ?>
			</select>
		</p>
		<button type="submit" class="button" id="wpmsync-sync-selected"><?php esc_html_e( 'Sync selected sites', 'wpmsync' ); ?></button>
	</form>
</div>
