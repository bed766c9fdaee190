<?php
/**
 * Tabs linking the network screens of the user sync (Settings → User sync, its options and its
 * undo journal, Users → Bulk user sync), so they read as one tool although each is its own page.
 *
 * @package wpmsync
 * @var string $wpmsync_tab Slug of the current page.
 */

defined( 'ABSPATH' ) || exit;

$wpmsync_tabs = array(
	Wpmsync_Admin::NETWORK_SLUG  => array( network_admin_url( 'settings.php?page=' . Wpmsync_Admin::NETWORK_SLUG ), __( 'Sync', 'wpmsync' ), 'manage_network_options' ),
	Wpmsync_Options_Screen::SLUG => array( Wpmsync_Options_Screen::url(), __( 'Options', 'wpmsync' ), Wpmsync_Options_Screen::CAPABILITY ),
	Wpmsync_Bulk_Screen::SLUG    => array( Wpmsync_Bulk_Screen::url(), __( 'Bulk sync / unsync', 'wpmsync' ), Wpmsync_Bulk_Screen::CAPABILITY ),
	Wpmsync_Journal_Screen::SLUG => array( Wpmsync_Journal_Screen::url(), __( 'Undo journal', 'wpmsync' ), Wpmsync_Journal_Screen::CAPABILITY ),
);
?>
<nav class="nav-tab-wrapper wp-clearfix" aria-label="<?php esc_attr_e( 'User sync screens', 'wpmsync' ); ?>">
	<?php foreach ( $wpmsync_tabs as $wpmsync_slug => $wpmsync_link ) : ?>
		<?php
		if ( ! current_user_can( $wpmsync_link[2] ) ) {
			continue;
		}
		?>
		<a href="<?php echo esc_url( $wpmsync_link[0] ); ?>" id="<?php echo esc_attr( 'wpmsync-tab-' . $wpmsync_slug ); ?>"
			class="nav-tab<?php echo $wpmsync_slug === $wpmsync_tab ? ' nav-tab-active' : ''; ?>"
			<?php echo $wpmsync_slug === $wpmsync_tab ? 'aria-current="page"' : ''; ?>><?php echo esc_html( $wpmsync_link[1] ); ?></a>
	<?php endforeach; ?>
</nav>
