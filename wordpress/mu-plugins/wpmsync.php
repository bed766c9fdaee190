<?php
/**
 * Plugin Name:       wpmsync
 * Description:       Tells the wpmsync Azure Functions app about new users, new sites, removals and role changes (signed hooks), and gives network and site admins screens to start and watch syncs.
 * Version:           0.1.0
 * Requires at least: 6.1
 * Requires PHP:      7.4
 * Network:           true
 * Text Domain:       wpmsync
 *
 * Loader: WordPress auto-loads only the top-level PHP files of wp-content/mu-plugins/, so this
 * file pulls in the code from the wpmsync/ folder next to it. Configuration is three constants in
 * wp-config.php (see wpmsync/README.md of the repository): WPMSYNC_ENDPOINT,
 * WPMSYNC_FUNCTION_KEY, WPMSYNC_HOOK_SECRET (and, only while the hook secret is rotated,
 * WPMSYNC_HOOK_SECRET_PREVIOUS).
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

if ( defined( 'WPMSYNC_VERSION' ) ) {
	return; // Loaded twice (a copy in plugins/ as well): the first one wins.
}

define( 'WPMSYNC_VERSION', '0.1.0' );
define( 'WPMSYNC_PLUGIN_FILE', __DIR__ . '/wpmsync/wpmsync-main.php' );

require_once __DIR__ . '/wpmsync/wpmsync-main.php';
