<?php
/**
 * Network Admin → Settings → User sync options.
 *
 * @package wpmsync
 * @var Wpmsync_Notices      $notices Notices of this response.
 * @var array                $options Normalized options (Wpmsync_Options_Screen::normalize()).
 * @var array[]              $rows    Sites of this page: blog_id, label, roles, default_role, opt_out, role.
 * @var string               $filter  none, excluded or allowed.
 * @var string[]             $chosen  Roles of the filter.
 * @var array<string,string> $roles   Roles the filter offers: name => label.
 * @var int                  $paged   Page of the site table.
 * @var int                  $pages   Pages in all.
 * @var int                  $total   Live sites in all.
 */

defined( 'ABSPATH' ) || exit;

$wpmsync_tab     = Wpmsync_Options_Screen::SLUG;
$wpmsync_scopes  = array(
	'all'              => __( 'All sites: every user joins every site; role changes go from any site to the others.', 'wpmsync' ),
	'main_to_subsites' => __( 'Main site to subsites: members of the main site join the subsites; role changes flow from the main site.', 'wpmsync' ),
	'subsites_to_main' => __( 'Subsites to main site: members of any subsite join the main site; role changes flow from subsites to it.', 'wpmsync' ),
);
$wpmsync_missing = array(
	'skip' => __( 'Skip the site and report it', 'wpmsync' ),
	'copy' => __( 'Copy the role\'s definition from the source site (as add_role() stores it)', 'wpmsync' ),
);
$wpmsync_filters = array(
	'none'     => __( 'Every role syncs', 'wpmsync' ),
	'excluded' => __( 'The roles checked below never sync', 'wpmsync' ),
	'allowed'  => __( 'Only the roles checked below sync', 'wpmsync' ),
);
?>
<div class="wrap">
	<h1><?php esc_html_e( 'User sync options', 'wpmsync' ); ?></h1>
	<?php require __DIR__ . '/tabs.php'; ?>
	<?php $notices->render(); ?>

	<form method="post" action="<?php echo esc_url( Wpmsync_Options_Screen::url( $paged ) ); ?>" id="wpmsync-options-form">
		<?php wp_nonce_field( 'wpmsync_save_options' ); ?>
		<table class="form-table" role="presentation">
			<tr>
				<th scope="row"><?php esc_html_e( 'Direction', 'wpmsync' ); ?></th>
				<td>
					<fieldset>
						<legend class="screen-reader-text"><?php esc_html_e( 'Direction', 'wpmsync' ); ?></legend>
						<?php foreach ( $wpmsync_scopes as $wpmsync_value => $wpmsync_label ) : ?>
							<label>
								<input type="radio" name="wpmsync_scope" id="<?php echo esc_attr( 'wpmsync-scope-' . $wpmsync_value ); ?>" value="<?php echo esc_attr( $wpmsync_value ); ?>" <?php checked( $options['scope'], $wpmsync_value ); ?> />
								<?php echo esc_html( $wpmsync_label ); ?>
							</label><br />
						<?php endforeach; ?>
					</fieldset>
				</td>
			</tr>
			<tr>
				<th scope="row"><?php esc_html_e( 'Role filter', 'wpmsync' ); ?></th>
				<td>
					<fieldset>
						<legend class="screen-reader-text"><?php esc_html_e( 'Role filter', 'wpmsync' ); ?></legend>
						<?php foreach ( $wpmsync_filters as $wpmsync_value => $wpmsync_label ) : ?>
							<label>
								<input type="radio" name="wpmsync_role_filter" id="<?php echo esc_attr( 'wpmsync-filter-' . $wpmsync_value ); ?>" value="<?php echo esc_attr( $wpmsync_value ); ?>" <?php checked( $filter, $wpmsync_value ); ?> />
								<?php echo esc_html( $wpmsync_label ); ?>
							</label><br />
						<?php endforeach; ?>
						<p id="wpmsync-filter-roles">
							<?php foreach ( $roles as $wpmsync_role => $wpmsync_role_label ) : ?>
								<label style="margin-right: 1.5em; white-space: nowrap;">
									<input type="checkbox" name="wpmsync_filter_roles[]" id="<?php echo esc_attr( 'wpmsync-filter-role-' . $wpmsync_role ); ?>" value="<?php echo esc_attr( $wpmsync_role ); ?>" <?php checked( in_array( $wpmsync_role, $chosen, true ) ); ?> />
									<?php echo esc_html( $wpmsync_role_label ); ?>
								</label>
							<?php endforeach; ?>
						</p>
						<p class="description"><?php esc_html_e( 'Roles of the main site and of the sites listed below.', 'wpmsync' ); ?></p>
					</fieldset>
				</td>
			</tr>
			<tr>
				<th scope="row"><label for="wpmsync-missing-role"><?php esc_html_e( 'Role missing on a site', 'wpmsync' ); ?></label></th>
				<td>
					<select name="wpmsync_missing_role" id="wpmsync-missing-role">
						<?php foreach ( $wpmsync_missing as $wpmsync_value => $wpmsync_label ) : ?>
							<option value="<?php echo esc_attr( $wpmsync_value ); ?>" <?php selected( $options['missing_role'], $wpmsync_value ); ?>><?php echo esc_html( $wpmsync_label ); ?></option>
						<?php endforeach; ?>
					</select>
					<p class="description"><?php esc_html_e( 'When role sync copies a role that a target site does not have.', 'wpmsync' ); ?></p>
				</td>
			</tr>
			<tr>
				<th scope="row"><label for="wpmsync-unsync"><?php esc_html_e( 'Unsync', 'wpmsync' ); ?></label></th>
				<td>
					<label>
						<input type="checkbox" name="wpmsync_unsync" id="wpmsync-unsync" value="1" <?php checked( $options['unsync'] ); ?> />
						<?php esc_html_e( 'A user removed from one site is removed from the other sites in scope too.', 'wpmsync' ); ?>
					</label>
				</td>
			</tr>
		</table>

		<h2><?php esc_html_e( 'Sites', 'wpmsync' ); ?></h2>
		<p><?php esc_html_e( 'A site that opts out receives no synced users and its role changes are not sent to other sites. A role chosen here is the one synced users get on that site, instead of its default role.', 'wpmsync' ); ?></p>
		<table class="widefat striped" id="wpmsync-site-options">
			<thead>
				<tr>
					<th scope="col"><?php esc_html_e( 'Site', 'wpmsync' ); ?></th>
					<th scope="col"><?php esc_html_e( 'Opt out', 'wpmsync' ); ?></th>
					<th scope="col"><?php esc_html_e( 'Role of synced users', 'wpmsync' ); ?></th>
				</tr>
			</thead>
			<tbody>
				<?php foreach ( $rows as $wpmsync_row ) : ?>
					<?php $wpmsync_id = (int) $wpmsync_row['blog_id']; ?>
					<tr id="<?php echo esc_attr( 'wpmsync-site-row-' . $wpmsync_id ); ?>">
						<td>
							<input type="hidden" name="wpmsync_site_ids[]" value="<?php echo esc_attr( (string) $wpmsync_id ); ?>" />
							<?php echo esc_html( $wpmsync_row['label'] ); ?>
						</td>
						<td>
							<label>
								<input type="checkbox" name="<?php echo esc_attr( 'wpmsync_site[' . $wpmsync_id . '][opt_out]' ); ?>" id="<?php echo esc_attr( 'wpmsync-opt-out-' . $wpmsync_id ); ?>" value="1" <?php checked( $wpmsync_row['opt_out'] ); ?> />
								<span class="screen-reader-text"><?php esc_html_e( 'Opt out', 'wpmsync' ); ?></span>
							</label>
						</td>
						<td>
							<select name="<?php echo esc_attr( 'wpmsync_site[' . $wpmsync_id . '][role]' ); ?>" id="<?php echo esc_attr( 'wpmsync-site-role-' . $wpmsync_id ); ?>">
								<option value="" <?php selected( $wpmsync_row['role'], '' ); ?>>
									<?php
									$wpmsync_default = isset( $wpmsync_row['roles'][ $wpmsync_row['default_role'] ] ) ? $wpmsync_row['roles'][ $wpmsync_row['default_role'] ] : $wpmsync_row['default_role'];
									/* translators: %s: the site's default role. */
									echo esc_html( sprintf( __( 'Site default (%s)', 'wpmsync' ), $wpmsync_default ) );
									?>
								</option>
								<?php foreach ( $wpmsync_row['roles'] as $wpmsync_role => $wpmsync_role_label ) : ?>
									<option value="<?php echo esc_attr( $wpmsync_role ); ?>" <?php selected( $wpmsync_row['role'], $wpmsync_role ); ?>><?php echo esc_html( $wpmsync_role_label ); ?></option>
								<?php endforeach; ?>
								<?php if ( '' !== $wpmsync_row['role'] && ! isset( $wpmsync_row['roles'][ $wpmsync_row['role'] ] ) ) : ?>
									<option value="<?php echo esc_attr( $wpmsync_row['role'] ); ?>" selected="selected">
										<?php
										/* translators: %s: role name. */
										echo esc_html( sprintf( __( '%s (not a role of this site)', 'wpmsync' ), $wpmsync_row['role'] ) );
										?>
									</option>
								<?php endif; ?>
							</select>
						</td>
					</tr>
				<?php endforeach; ?>
			</tbody>
		</table>
		<?php if ( $pages > 1 ) : ?>
			<p class="wpmsync-pages">
				<?php
				/* translators: 1: page number, 2: pages in all, 3: number of sites. */
				echo esc_html( sprintf( __( 'Page %1$d of %2$d (%3$d sites). Saving sends the sites of this page only; the others keep their options.', 'wpmsync' ), $paged, $pages, $total ) );
				?>
				<?php if ( $paged > 1 ) : ?>
					<a class="button" href="<?php echo esc_url( Wpmsync_Options_Screen::url( $paged - 1 ) ); ?>"><?php esc_html_e( '&larr; Previous sites', 'wpmsync' ); ?></a>
				<?php endif; ?>
				<?php if ( $paged < $pages ) : ?>
					<a class="button" href="<?php echo esc_url( Wpmsync_Options_Screen::url( $paged + 1 ) ); ?>"><?php esc_html_e( 'Next sites &rarr;', 'wpmsync' ); ?></a>
				<?php endif; ?>
			</p>
		<?php endif; ?>
		<p class="submit">
			<button type="submit" class="button button-primary" id="wpmsync-save-options"><?php esc_html_e( 'Save options', 'wpmsync' ); ?></button>
		</p>
	</form>
</div>
