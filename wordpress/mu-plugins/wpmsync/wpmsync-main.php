<?php
/**
 * Bootstrap of the wpmsync mu-plugin (required by the loader ../wpmsync.php).
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

require_once __DIR__ . '/includes/class-wpmsync-config.php';
require_once __DIR__ . '/includes/class-wpmsync-signer.php';
require_once __DIR__ . '/includes/class-wpmsync-client.php';
require_once __DIR__ . '/includes/class-wpmsync-outbox.php';
require_once __DIR__ . '/includes/class-wpmsync-removals.php';
require_once __DIR__ . '/includes/class-wpmsync-events.php';
require_once __DIR__ . '/includes/class-wpmsync-rest.php';
require_once __DIR__ . '/includes/class-wpmsync-notices.php';
require_once __DIR__ . '/includes/class-wpmsync-screen.php';
require_once __DIR__ . '/includes/class-wpmsync-options-screen.php';
require_once __DIR__ . '/includes/class-wpmsync-bulk-screen.php';
require_once __DIR__ . '/includes/class-wpmsync-journal-screen.php';
require_once __DIR__ . '/includes/class-wpmsync-user-sites.php';
require_once __DIR__ . '/includes/class-wpmsync-admin.php';
require_once __DIR__ . '/includes/class-wpmsync-plugin.php';

/*
 * Boot once every mu-plugin is loaded rather than right now: the constants normally come from
 * wp-config.php, but an operator (or a test) may define them in another mu-plugin, and
 * mu-plugins load in file-name order.
 */
add_action( 'muplugins_loaded', array( 'Wpmsync_Plugin', 'boot' ), 0 );
