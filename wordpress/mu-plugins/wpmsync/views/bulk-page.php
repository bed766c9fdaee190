<?php
/**
 * Network Admin → Users → Bulk user sync.
 *
 * One POST form: the search button comes first, so Enter in the search box searches; the picked
 * users travel as hidden inputs (chips with a remove button); checked search results join the
 * selection on any submit.
 *
 * @package wpmsync
 * @var Wpmsync_Notices   $notices  Notices of this response.
 * @var array             $results  {users, total, pages} of the search.
 * @var array<int,object> $selected Users picked so far: id => {ID, user_login, user_email, display_name}.
 * @var WP_Site[]         $sites    Live sites of the network.
 * @var int[]             $checked  Sites checked.
 * @var string            $search   Search term.
 * @var int               $paged    Page of the results.
 * @var bool              $force    Add back users removed on purpose.
 * @var array|null        $outcome  {action, dry_run, data} of the call just made.
 */

defined( 'ABSPATH' ) || exit;

$wpmsync_tab = Wpmsync_Bulk_Screen::SLUG;
?>
<div class="wrap">
	<h1><?php esc_html_e( 'Bulk user sync', 'wpmsync' ); ?></h1>
	<?php require __DIR__ . '/tabs.php'; ?>
	<?php $notices->render(); ?>
	<?php
	if ( $outcome ) {
		$wpmsync_outcome = $outcome;
		require __DIR__ . '/outcome.php';
	}
	?>
	<form method="post" action="<?php echo esc_url( Wpmsync_Bulk_Screen::url() ); ?>" id="wpmsync-bulk-form">
		<?php wp_nonce_field( Wpmsync_Bulk_Screen::NONCE ); ?>

		<h2><?php esc_html_e( '1. Users', 'wpmsync' ); ?></h2>
		<p class="search-box" style="float: none; margin: 0 0 1em;">
			<label for="wpmsync-search"><?php esc_html_e( 'Search users by login, e-mail or name:', 'wpmsync' ); ?></label>
			<input type="search" id="wpmsync-search" name="wpmsync_search" value="<?php echo esc_attr( $search ); ?>" />
			<button type="submit" class="button" id="wpmsync-search-submit" name="wpmsync_action" value="search"><?php esc_html_e( 'Search users', 'wpmsync' ); ?></button>
		</p>
		<table class="widefat striped" id="wpmsync-user-results" style="max-width: 60em;">
			<thead>
				<tr>
					<td class="check-column"></td>
					<th scope="col"><?php esc_html_e( 'Username', 'wpmsync' ); ?></th>
					<th scope="col"><?php esc_html_e( 'Name', 'wpmsync' ); ?></th>
					<th scope="col"><?php esc_html_e( 'Email', 'wpmsync' ); ?></th>
				</tr>
			</thead>
			<tbody>
				<?php if ( ! $results['users'] ) : ?>
					<tr><td colspan="4"><?php esc_html_e( 'No users found.', 'wpmsync' ); ?></td></tr>
				<?php endif; ?>
				<?php foreach ( $results['users'] as $wpmsync_user ) : ?>
					<?php $wpmsync_uid = (int) $wpmsync_user->ID; ?>
					<tr>
						<th scope="row" class="check-column">
							<?php if ( isset( $selected[ $wpmsync_uid ] ) ) : ?>
								<span class="dashicons dashicons-yes" title="<?php esc_attr_e( 'Selected', 'wpmsync' ); ?>"></span>
							<?php else : ?>
								<input type="checkbox" name="wpmsync_pick[]" id="<?php echo esc_attr( 'wpmsync-pick-' . $wpmsync_uid ); ?>" value="<?php echo esc_attr( (string) $wpmsync_uid ); ?>" />
							<?php endif; ?>
						</th>
						<td><label for="<?php echo esc_attr( 'wpmsync-pick-' . $wpmsync_uid ); ?>"><?php echo esc_html( $wpmsync_user->user_login ); ?></label></td>
						<td><?php echo esc_html( $wpmsync_user->display_name ); ?></td>
						<td><?php echo esc_html( $wpmsync_user->user_email ); ?></td>
					</tr>
				<?php endforeach; ?>
			</tbody>
		</table>
		<p>
			<?php
			/* translators: 1: users found, 2: page, 3: pages. */
			echo esc_html( sprintf( _n( '%1$s user found, page %2$d of %3$d.', '%1$s users found, page %2$d of %3$d.', $results['total'], 'wpmsync' ), number_format_i18n( $results['total'] ), $paged, $results['pages'] ) );
			?>
			<?php if ( $paged > 1 ) : ?>
				<button type="submit" class="button" name="wpmsync_goto" id="wpmsync-results-prev" value="<?php echo esc_attr( (string) ( $paged - 1 ) ); ?>"><?php esc_html_e( 'Previous', 'wpmsync' ); ?></button>
			<?php endif; ?>
			<?php if ( $paged < $results['pages'] ) : ?>
				<button type="submit" class="button" name="wpmsync_goto" id="wpmsync-results-next" value="<?php echo esc_attr( (string) ( $paged + 1 ) ); ?>"><?php esc_html_e( 'Next', 'wpmsync' ); ?></button>
			<?php endif; ?>
			<button type="submit" class="button" id="wpmsync-pick-submit" name="wpmsync_action" value="pick"><?php esc_html_e( 'Add checked users to the selection', 'wpmsync' ); ?></button>
		</p>

		<h3><?php esc_html_e( 'Selected users', 'wpmsync' ); ?></h3>
		<ul id="wpmsync-selected-users" style="display: flex; flex-wrap: wrap; gap: .5em;">
			<?php if ( ! $selected ) : ?>
				<li class="wpmsync-none"><?php esc_html_e( 'None yet: search, check users, then add them (checked users are also taken along by the buttons below).', 'wpmsync' ); ?></li>
			<?php endif; ?>
			<?php foreach ( $selected as $wpmsync_uid => $wpmsync_user ) : ?>
				<li class="wpmsync-chip" data-user-id="<?php echo esc_attr( (string) $wpmsync_uid ); ?>" style="border: 1px solid #c3c4c7; border-radius: 1em; padding: .1em .3em .1em .8em; background: #fff;">
					<input type="hidden" name="wpmsync_users[]" value="<?php echo esc_attr( (string) $wpmsync_uid ); ?>" />
					<?php echo esc_html( sprintf( '%s (%s)', $wpmsync_user->user_login, $wpmsync_user->user_email ) ); ?>
					<button type="submit" class="button-link" name="wpmsync_unpick" value="<?php echo esc_attr( (string) $wpmsync_uid ); ?>"
						aria-label="<?php echo esc_attr( sprintf( /* translators: %s: user login. */ __( 'Remove %s from the selection', 'wpmsync' ), $wpmsync_user->user_login ) ); ?>">&times;</button>
				</li>
			<?php endforeach; ?>
		</ul>

		<h2><?php esc_html_e( '2. Sites', 'wpmsync' ); ?></h2>
		<fieldset id="wpmsync-bulk-sites" style="max-height: 20em; overflow: auto; border: 1px solid #c3c4c7; padding: .5em 1em; background: #fff; max-width: 60em;">
			<legend class="screen-reader-text"><?php esc_html_e( 'Sites', 'wpmsync' ); ?></legend>
			<?php foreach ( $sites as $wpmsync_site ) : ?>
				<?php $wpmsync_bid = (int) $wpmsync_site->blog_id; ?>
				<label style="display: block;">
					<input type="checkbox" name="wpmsync_sites[]" id="<?php echo esc_attr( 'wpmsync-bulk-site-' . $wpmsync_bid ); ?>" value="<?php echo esc_attr( (string) $wpmsync_bid ); ?>" <?php checked( in_array( $wpmsync_bid, $checked, true ) ); ?> />
					<?php echo esc_html( Wpmsync_Admin::site_label( $wpmsync_site ) ); ?>
				</label>
			<?php endforeach; ?>
		</fieldset>

		<h2><?php esc_html_e( '3. Action', 'wpmsync' ); ?></h2>
		<p>
			<label>
				<input type="checkbox" name="wpmsync_force" id="wpmsync-force" value="1" <?php checked( $force ); ?> />
				<?php esc_html_e( 'Also add back users who were removed from a site on purpose (clears that record).', 'wpmsync' ); ?>
			</label>
		</p>
		<p class="submit">
			<button type="submit" class="button" name="wpmsync_action" value="preview_sync" id="wpmsync-preview-sync"><?php esc_html_e( 'Preview adding', 'wpmsync' ); ?></button>
			<button type="submit" class="button button-primary" name="wpmsync_action" value="sync" id="wpmsync-bulk-sync"><?php esc_html_e( 'Add to selected sites', 'wpmsync' ); ?></button>
			&nbsp;&nbsp;
			<button type="submit" class="button" name="wpmsync_action" value="preview_unsync" id="wpmsync-preview-unsync"><?php esc_html_e( 'Preview removing', 'wpmsync' ); ?></button>
			<button type="submit" class="button" name="wpmsync_action" value="unsync" id="wpmsync-bulk-unsync"><?php esc_html_e( 'Remove from selected sites', 'wpmsync' ); ?></button>
		</p>
	</form>
</div>
