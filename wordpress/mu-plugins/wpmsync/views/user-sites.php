<?php
/**
 * The site checklist on Network Admin → Users → Edit user.
 *
 * @package wpmsync
 * @var WP_Site[] $sites   Live sites of the network.
 * @var int[]     $member  Sites where the user is a member.
 * @var int       $user_id Edited user.
 */

defined( 'ABSPATH' ) || exit;
?>
<h2 id="wpmsync-user-sites-title"><?php esc_html_e( 'Sites (user sync)', 'wpmsync' ); ?></h2>
<table class="form-table" role="presentation" id="wpmsync-user-sites">
	<tr>
		<th scope="row"><?php esc_html_e( 'Member of', 'wpmsync' ); ?></th>
		<td>
			<?php wp_nonce_field( 'wpmsync_user_sites_' . $user_id, Wpmsync_User_Sites::NONCE_NAME, false ); ?>
			<input type="hidden" name="<?php echo esc_attr( Wpmsync_User_Sites::FIELD . '_shown' ); ?>" value="1" />
			<fieldset style="max-height: 20em; overflow: auto;">
				<legend class="screen-reader-text"><?php esc_html_e( 'Member of', 'wpmsync' ); ?></legend>
				<?php foreach ( $sites as $wpmsync_site ) : ?>
					<?php $wpmsync_bid = (int) $wpmsync_site->blog_id; ?>
					<label style="display: block;">
						<input type="checkbox" name="<?php echo esc_attr( Wpmsync_User_Sites::FIELD . '[]' ); ?>" id="<?php echo esc_attr( 'wpmsync-user-site-' . $wpmsync_bid ); ?>" value="<?php echo esc_attr( (string) $wpmsync_bid ); ?>" <?php checked( in_array( $wpmsync_bid, $member, true ) ); ?> />
						<?php echo esc_html( Wpmsync_Admin::site_label( $wpmsync_site ) ); ?>
					</label>
				<?php endforeach; ?>
			</fieldset>
			<p class="description"><?php esc_html_e( 'Checking a site adds the user to it with the role the sync gives there (the site\'s default role or the role set in the user sync options); unchecking removes the user from it, as "Remove from site" does. The sync service makes the change when you update the user.', 'wpmsync' ); ?></p>
		</td>
	</tr>
</table>
