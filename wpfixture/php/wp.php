<?php
/**
 * wpfixture driver: boots a REAL WordPress (core only, no plugins/themes) from
 * our own tiny config and runs a batch of operations with core functions.
 *
 * Protocol: one JSON document on stdin:
 *   {
 *     "db": {"name": "...", "user": "root", "password": "", "host": "127.0.0.1",
 *            "port": 3306, "prefix": "wp_", "domain": "wp.test"},
 *     "multisite": true,            // false only for the "install" op
 *     "abspath": "/usr/share/wordpress/",   // optional
 *     "content_dir": "/tmp/...",            // optional (WP_CONTENT_DIR)
 *     "ops": [ {"op": "create_site", ...}, ... ]
 *   }
 * and exactly one JSON document on stdout:
 *   {"results": [ <result of op 0>, <result of op 1>, ... ]}
 * or, on failure (exit status 1):
 *   {"error": "...", "op_index": N|null, "results": [...partial...]}
 *
 * Anything WordPress prints (notices, stray HTML) is diverted to stderr.
 */

// ---------------------------------------------------------------------------
// Output discipline: PHP diagnostics go to stderr, stray output is buffered.
// ---------------------------------------------------------------------------
ini_set( 'display_errors', 'stderr' );
ini_set( 'log_errors', '0' );
ini_set( 'memory_limit', '-1' );
set_time_limit( 0 );

$GLOBALS['__wpfx'] = array(
	'done'     => false,
	'results'  => array(),
	'op_index' => null,
	'stdout'   => fopen( 'php://stdout', 'w' ),
);

ob_start();

/** Commit the batch transaction (see "transaction" below), if any. */
function wpfx_commit() {
	global $wpdb;
	if ( ! empty( $GLOBALS['__wpfx']['in_tx'] ) && isset( $wpdb ) && is_object( $wpdb ) ) {
		$GLOBALS['__wpfx']['in_tx'] = false;
		if ( false === $wpdb->query( 'COMMIT' ) ) {
			return 'COMMIT failed: ' . $wpdb->last_error;
		}
		$wpdb->query( 'SET autocommit = 1' );
	}
	return null;
}

/** Emit the one JSON document on stdout and flush stray output to stderr. */
function wpfx_emit( $doc ) {
	// Earlier ops stay applied even when a later op fails (as without a transaction).
	$commit_error = wpfx_commit();
	if ( $commit_error ) {
		$doc = array(
			'error'    => $commit_error . ( isset( $doc['error'] ) ? ' (after: ' . $doc['error'] . ')' : '' ),
			'op_index' => null,
			'results'  => array(),
		);
	}
	$stray = '';
	while ( ob_get_level() > 0 ) {
		$stray .= ob_get_clean();
	}
	if ( '' !== trim( $stray ) ) {
		fwrite( STDERR, "[wpfixture] stray output from WordPress:\n" . $stray . "\n" );
	}
	$json = json_encode( $doc, JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE );
	fwrite( $GLOBALS['__wpfx']['stdout'], $json . "\n" );
	fflush( $GLOBALS['__wpfx']['stdout'] );
	$GLOBALS['__wpfx']['done'] = true;
}

function wpfx_fail( $message ) {
	wpfx_emit(
		array(
			'error'    => $message,
			'op_index' => $GLOBALS['__wpfx']['op_index'],
			'results'  => $GLOBALS['__wpfx']['results'],
		)
	);
	exit( 1 );
}

class WPFX_Exception extends Exception {}

// Anything that ends the process without us having written the answer
// (fatal error, exit()/die() inside WordPress) becomes a JSON error.
register_shutdown_function(
	function () {
		if ( $GLOBALS['__wpfx']['done'] ) {
			return;
		}
		$err = error_get_last();
		$msg = 'PHP process ended unexpectedly';
		if ( $err && in_array( $err['type'], array( E_ERROR, E_PARSE, E_CORE_ERROR, E_COMPILE_ERROR, E_USER_ERROR, E_RECOVERABLE_ERROR ), true ) ) {
			$msg = sprintf( 'PHP fatal error: %s in %s:%d', $err['message'], $err['file'], $err['line'] );
		} else {
			$stray = '';
			while ( ob_get_level() > 0 ) {
				$stray .= ob_get_clean();
			}
			$stray = trim( strip_tags( $stray ) );
			if ( '' !== $stray ) {
				$msg .= ': ' . substr( preg_replace( '/\s+/', ' ', $stray ), 0, 2000 );
			}
		}
		wpfx_emit(
			array(
				'error'    => $msg,
				'op_index' => $GLOBALS['__wpfx']['op_index'],
				'results'  => $GLOBALS['__wpfx']['results'],
			)
		);
		exit( 1 );
	}
);

// ---------------------------------------------------------------------------
// Request.
// ---------------------------------------------------------------------------
$__wpfx_req = json_decode( stream_get_contents( STDIN ), true );
if ( ! is_array( $__wpfx_req ) ) {
	wpfx_fail( 'stdin is not a JSON object: ' . json_last_error_msg() );
}
$__wpfx_db        = isset( $__wpfx_req['db'] ) && is_array( $__wpfx_req['db'] ) ? $__wpfx_req['db'] : array();
$__wpfx_multisite = ! isset( $__wpfx_req['multisite'] ) || (bool) $__wpfx_req['multisite'];
$__wpfx_ops       = isset( $__wpfx_req['ops'] ) && is_array( $__wpfx_req['ops'] ) ? $__wpfx_req['ops'] : array();
$__wpfx_domain    = isset( $__wpfx_db['domain'] ) ? (string) $__wpfx_db['domain'] : 'wp.test';
$__wpfx_abspath   = isset( $__wpfx_req['abspath'] ) ? rtrim( $__wpfx_req['abspath'], '/' ) . '/' : '/usr/share/wordpress/';

if ( empty( $__wpfx_db['name'] ) ) {
	wpfx_fail( 'db.name is required' );
}
if ( ! file_exists( $__wpfx_abspath . 'wp-settings.php' ) ) {
	wpfx_fail( 'WordPress not found at ' . $__wpfx_abspath );
}
foreach ( $__wpfx_ops as $__i => $__op ) {
	if ( 'install' === ( $__op['op'] ?? '' ) && $__wpfx_multisite ) {
		wpfx_fail( 'the install op needs "multisite": false' );
	}
}

// A private, empty content directory: no plugins, themes, drop-ins, uploads.
$__wpfx_content = isset( $__wpfx_req['content_dir'] ) ? rtrim( $__wpfx_req['content_dir'], '/' ) : sys_get_temp_dir() . '/wpfixture-wp-content';
foreach ( array( '', '/plugins', '/themes', '/uploads', '/mu-plugins' ) as $__d ) {
	if ( ! is_dir( $__wpfx_content . $__d ) ) {
		@mkdir( $__wpfx_content . $__d, 0777, true );
	}
}

// ---------------------------------------------------------------------------
// Fake a web request for WordPress.
// ---------------------------------------------------------------------------
$_SERVER['HTTP_HOST']       = $__wpfx_domain;
$_SERVER['SERVER_NAME']     = $__wpfx_domain;
$_SERVER['SERVER_PORT']     = '80';
$_SERVER['REQUEST_URI']     = '/';
$_SERVER['REQUEST_METHOD']  = 'GET';
$_SERVER['SCRIPT_NAME']     = '/index.php';
$_SERVER['PHP_SELF']        = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $__wpfx_abspath . 'index.php';
$_SERVER['REMOTE_ADDR']     = '127.0.0.1';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['HTTP_USER_AGENT'] = 'wpfixture';
unset( $_SERVER['HTTPS'] );

// ---------------------------------------------------------------------------
// Our own wp-config.
// ---------------------------------------------------------------------------
define( 'ABSPATH', $__wpfx_abspath );
define( 'WP_CONTENT_DIR', $__wpfx_content );
define( 'WP_CONTENT_URL', 'http://' . $__wpfx_domain . '/wp-content' );
define( 'DB_NAME', (string) $__wpfx_db['name'] );
define( 'DB_USER', isset( $__wpfx_db['user'] ) ? (string) $__wpfx_db['user'] : 'root' );
define( 'DB_PASSWORD', isset( $__wpfx_db['password'] ) ? (string) $__wpfx_db['password'] : '' );
define( 'DB_HOST', ( isset( $__wpfx_db['host'] ) ? (string) $__wpfx_db['host'] : '127.0.0.1' ) . ':' . ( isset( $__wpfx_db['port'] ) ? (int) $__wpfx_db['port'] : 3306 ) );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
if ( ! empty( $__wpfx_db['ssl'] ) ) {
	// The server requires TLS (the mysql-tls lane); the fixture does not check its certificate.
	define( 'MYSQL_CLIENT_FLAGS', MYSQLI_CLIENT_SSL | MYSQLI_CLIENT_SSL_DONT_VERIFY_SERVER_CERT );
}
$table_prefix = isset( $__wpfx_db['prefix'] ) ? (string) $__wpfx_db['prefix'] : 'wp_';

// Fixed salts so WordPress never generates/stores secret keys in the DB.
foreach ( array( 'AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT' ) as $__k ) {
	define( $__k, 'wpfixture-' . strtolower( $__k ) . '-not-secret' );
}

// Never touch the network, never spawn cron, never self-update.
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'DISABLE_WP_CRON', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_AUTO_UPDATE_CORE', false );
define( 'DISALLOW_FILE_MODS', true );
define( 'WP_DISABLE_FATAL_ERROR_HANDLER', true );
define( 'WP_DEBUG', ! empty( $__wpfx_req['debug'] ) );
define( 'WP_DEBUG_DISPLAY', ! empty( $__wpfx_req['debug'] ) );
define( 'WP_DEBUG_LOG', false );

if ( $__wpfx_multisite ) {
	define( 'WP_ALLOW_MULTISITE', true );
	define( 'MULTISITE', true );
	define( 'SUBDOMAIN_INSTALL', false );
	define( 'DOMAIN_CURRENT_SITE', $__wpfx_domain );
	define( 'PATH_CURRENT_SITE', '/' );
	define( 'SITE_ID_CURRENT_SITE', 1 );
	define( 'BLOG_ID_CURRENT_SITE', 1 );
} else {
	// Installing: wp_not_installed() must not redirect, and wp_guess_url()
	// cannot work from the CLI, so pin the URLs.
	define( 'WP_INSTALLING', true );
	define( 'WP_SITEURL', 'http://' . $__wpfx_domain );
	define( 'WP_HOME', 'http://' . $__wpfx_domain );
}

// No e-mail, ever (pluggable.php only defines wp_mail() if it does not exist).
function wp_mail( $to, $subject, $message, $headers = '', $attachments = array() ) {
	return true;
}

/** Convert wp_die() into an exception instead of printing HTML and exiting. */
function wpfx_die_handler( $message, $title = '', $args = array() ) {
	if ( function_exists( 'is_wp_error' ) && is_wp_error( $message ) ) {
		$message = $message->get_error_message();
	}
	throw new WPFX_Exception( 'wp_die: ' . trim( strip_tags( (string) $message ) ) . ( $title ? " ($title)" : '' ) );
}

// Pre-register hooks before WordPress loads plugin.php (WP_Hook supports this).
$GLOBALS['wp_filter'] = array();
foreach ( array( 'wp_die_handler', 'wp_die_ajax_handler', 'wp_die_json_handler', 'wp_die_jsonp_handler', 'wp_die_xmlrpc_handler', 'wp_die_xml_handler' ) as $__hook ) {
	$GLOBALS['wp_filter'][ $__hook ][10][] = array(
		'function'      => function () {
			return 'wpfx_die_handler';
		},
		'accepted_args' => 1,
	);
}
$GLOBALS['wp_filter']['pre_wp_mail'][10][] = array(
	'function'      => function () {
		return true;
	},
	'accepted_args' => 1,
);
$GLOBALS['wp_filter']['pre_http_request'][10][] = array(
	'function'      => function () {
		return new WP_Error( 'wpfixture_no_http', 'HTTP disabled by wpfixture' );
	},
	'accepted_args' => 1,
);

/** Explain the usual reasons of a failed boot (WordPress only says "database connection"). */
function wpfx_boot_diagnosis() {
	global $table_prefix, $__wpfx_multisite, $__wpfx_domain;
	mysqli_report( MYSQLI_REPORT_OFF );
	$parts = explode( ':', DB_HOST );
	$m     = @mysqli_connect( $parts[0], DB_USER, DB_PASSWORD, '', isset( $parts[1] ) ? (int) $parts[1] : 3306 );
	if ( ! $m ) {
		return ' [cannot connect to MariaDB at ' . DB_HOST . ': ' . mysqli_connect_error() . ']';
	}
	if ( ! @mysqli_select_db( $m, DB_NAME ) ) {
		return ' [database ' . DB_NAME . ' does not exist]';
	}
	if ( ! $__wpfx_multisite ) {
		return '';
	}
	$res = @mysqli_query( $m, 'SELECT domain, path FROM `' . $table_prefix . 'site` WHERE id = 1' );
	$row = $res ? mysqli_fetch_assoc( $res ) : null;
	if ( ! $row ) {
		return ' [no network in ' . DB_NAME . ' with table prefix ' . $table_prefix . ': run the install op first]';
	}
	if ( $row['domain'] !== $__wpfx_domain ) {
		return ' [network 1 has domain ' . $row['domain'] . ' but this request used domain ' . $__wpfx_domain . ']';
	}
	return '';
}

// ---------------------------------------------------------------------------
// Boot WordPress (must happen at global scope).
// ---------------------------------------------------------------------------
try {
	require ABSPATH . 'wp-settings.php';
} catch ( Throwable $e ) {
	wpfx_fail( 'booting WordPress failed: ' . $e->getMessage() . wpfx_boot_diagnosis() );
}
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/user.php';
if ( is_multisite() ) {
	require_once ABSPATH . 'wp-admin/includes/ms.php';
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------
function wpfx_arg( $op, $key, $default = null ) {
	return array_key_exists( $key, $op ) ? $op[ $key ] : $default;
}

function wpfx_req( $op, $key ) {
	if ( ! array_key_exists( $key, $op ) ) {
		throw new WPFX_Exception( "op '{$op['op']}' needs '$key'" );
	}
	return $op[ $key ];
}

function wpfx_check( $value, $what ) {
	if ( is_wp_error( $value ) ) {
		throw new WPFX_Exception( $what . ': ' . $value->get_error_code() . ': ' . $value->get_error_message() );
	}
	return $value;
}

/** JSON map (object) even when empty or keyed 0..n-1. */
function wpfx_map( array $a ) {
	return (object) $a;
}

function wpfx_network( $network_id ) {
	$network = get_network( (int) $network_id );
	if ( ! $network ) {
		throw new WPFX_Exception( "network $network_id does not exist" );
	}
	return $network;
}

/** Logins of the super admins of a network (its site_admins sitemeta). */
function wpfx_super_admin_logins( $network_id ) {
	$admins = get_network_option( (int) $network_id, 'site_admins', array() );
	return is_array( $admins ) ? array_values( $admins ) : array();
}

function wpfx_is_super_admin_on( $user_id, $network_id ) {
	$user = get_userdata( (int) $user_id );
	return $user && in_array( $user->user_login, wpfx_super_admin_logins( $network_id ), true );
}

/** Ids of live sites (not archived/spam/deleted) of a network, by blog id. */
function wpfx_live_sites( $network_id ) {
	return array_map(
		'intval',
		get_sites(
			array(
				'network_id' => (int) $network_id,
				'archived'   => 0,
				'spam'       => 0,
				'deleted'    => 0,
				'number'     => 0,
				'orderby'    => 'id',
				'order'      => 'ASC',
				'fields'     => 'ids',
			)
		)
	);
}

/** Ids of live users (not spam/deleted), by ID. */
function wpfx_live_users() {
	global $wpdb;
	return array_map( 'intval', $wpdb->get_col( "SELECT ID FROM {$wpdb->users} WHERE spam = 0 AND deleted = 0 ORDER BY ID" ) );
}

/** The role a site hands to new members: default_role if it exists there, else subscriber. */
function wpfx_site_default_role( $blog_id ) {
	switch_to_blog( (int) $blog_id );
	$role = get_option( 'default_role' );
	if ( ! $role || ! wp_roles()->is_role( $role ) ) {
		$role = 'subscriber';
	}
	restore_current_blog();
	return $role;
}

function wpfx_admin_user_id( $network_id = 1 ) {
	$id = (int) get_network_option( (int) $network_id, 'admin_user_id' );
	if ( ! $id ) {
		$id = (int) get_network_option( 1, 'admin_user_id' );
	}
	return $id;
}

function wpfx_int_list( $v ) {
	if ( null === $v ) {
		return null;
	}
	return array_map( 'intval', (array) $v );
}

// ---------------------------------------------------------------------------
// Operations.
// ---------------------------------------------------------------------------

/** Single-site install + network creation (WordPress's network.php flow). */
function wpfx_op_install( $op ) {
	global $wpdb;
	$domain = $_SERVER['HTTP_HOST'];
	$title  = (string) wpfx_arg( $op, 'title', 'Test Network' );
	$login  = (string) wpfx_arg( $op, 'admin_user', 'admin' );
	$email  = (string) wpfx_arg( $op, 'admin_email', 'admin@example.test' );
	$pass   = (string) wpfx_arg( $op, 'admin_password', 'password' );

	if ( is_blog_installed() ) {
		throw new WPFX_Exception( 'WordPress is already installed in this database/prefix' );
	}
	$r = wp_install( $title, $login, $email, (int) wpfx_arg( $op, 'public', 1 ), '', wp_slash( $pass ) );
	wpfx_check( $r['user_id'] ?? null, 'wp_install' );

	// wp-admin/network.php: register the global ms tables, create them, populate.
	foreach ( $wpdb->tables( 'ms_global' ) as $table => $prefixed_table ) {
		$wpdb->$table = $prefixed_table;
	}
	install_network();
	$res = populate_network( 1, $domain, $email, (string) wpfx_arg( $op, 'network_title', $title ), '/', false );
	wpfx_check( $res, 'populate_network' );
	wp_cache_flush();
	return array(
		'admin_user_id' => (int) $r['user_id'],
		'network_id'    => 1,
		'blog_id'       => 1,
	);
}

function wpfx_op_create_site( $op ) {
	$network_id = (int) wpfx_arg( $op, 'network_id', 1 );
	$network    = wpfx_network( $network_id );
	$slug       = trim( (string) wpfx_req( $op, 'slug' ), '/' );
	$title      = (string) wpfx_arg( $op, 'title', ucfirst( $slug ) );
	$user_id    = (int) wpfx_arg( $op, 'user_id', wpfx_admin_user_id( $network_id ) );
	$options    = (array) wpfx_arg( $op, 'options', array() );
	// network/site-new.php passes public => 1.
	$meta = array_merge( array( 'public' => 1 ), $options );
	foreach ( array( 'archived', 'spam', 'deleted', 'mature', 'public', 'lang_id' ) as $f ) {
		if ( array_key_exists( $f, $op ) ) {
			$meta[ $f ] = (int) $op[ $f ];
		}
	}
	$path    = trailingslashit( $network->path ) . $slug . '/';
	$blog_id = wpmu_create_blog( $network->domain, $path, $title, $user_id, $meta, $network_id );
	wpfx_check( $blog_id, "wpmu_create_blog($slug)" );
	return (int) $blog_id;
}

function wpfx_op_create_network( $op ) {
	global $wpdb;
	$network_id = (int) wpfx_req( $op, 'network_id' );
	$domain     = (string) wpfx_req( $op, 'domain' );
	$path       = trailingslashit( '/' . ltrim( (string) wpfx_arg( $op, 'path', '/' ), '/' ) );
	$title      = (string) wpfx_arg( $op, 'title', 'Network ' . $network_id );
	$email      = (string) wpfx_arg( $op, 'admin_email', get_network_option( 1, 'admin_email' ) );

	$res = populate_network( $network_id, $domain, $email, $title, $path, false );
	wpfx_check( $res, 'populate_network' );
	clean_network_cache( $network_id );

	if ( array_key_exists( 'site_admins', $op ) ) {
		update_network_option( $network_id, 'site_admins', array_values( (array) $op['site_admins'] ) );
	}
	if ( array_key_exists( 'meta', $op ) ) {
		foreach ( (array) $op['meta'] as $k => $v ) {
			update_network_option( $network_id, $k, $v );
		}
	}
	$admin_id = (int) wpfx_arg( $op, 'user_id', wpfx_admin_user_id( $network_id ) );
	$blog_id  = wp_insert_site(
		array(
			'domain'     => $domain,
			'path'       => $path,
			'network_id' => $network_id,
			'title'      => (string) wpfx_arg( $op, 'site_title', $title ),
			'user_id'    => $admin_id,
			'options'    => (array) wpfx_arg( $op, 'options', array() ),
		)
	);
	wpfx_check( $blog_id, 'wp_insert_site(main site of network ' . $network_id . ')' );
	update_network_option( $network_id, 'main_site', (int) $blog_id );
	clean_network_cache( $network_id );
	return array(
		'network_id' => $network_id,
		'blog_id'    => (int) $blog_id,
	);
}

function wpfx_create_user( $login, $email, $password ) {
	if ( null === $email || '' === $email ) {
		$email = $login . '@example.test';
	}
	if ( null === $password || '' === $password ) {
		$password = wp_generate_password( 12, false ); // as network/user-new.php does
	}
	if ( username_exists( $login ) ) {
		throw new WPFX_Exception( "user login '$login' already exists" );
	}
	if ( email_exists( $email ) ) {
		throw new WPFX_Exception( "user email '$email' already exists" );
	}
	$id = wpmu_create_user( $login, $password, $email );
	if ( ! $id ) {
		throw new WPFX_Exception( "wpmu_create_user('$login') failed" );
	}
	return (int) $id;
}

function wpfx_op_create_user( $op ) {
	return wpfx_create_user( (string) wpfx_req( $op, 'login' ), wpfx_arg( $op, 'email' ), wpfx_arg( $op, 'password' ) );
}

function wpfx_op_create_users( $op ) {
	$prefix = (string) wpfx_arg( $op, 'prefix', 'user' );
	$count  = (int) wpfx_req( $op, 'count' );
	$start  = (int) wpfx_arg( $op, 'start', 1 );
	$width  = (int) wpfx_arg( $op, 'width', 0 );
	$domain = (string) wpfx_arg( $op, 'email_domain', 'example.test' );
	$pass   = wpfx_arg( $op, 'password' );
	$ids    = array();
	for ( $i = $start; $i < $start + $count; $i++ ) {
		$login = $prefix . ( $width ? str_pad( (string) $i, $width, '0', STR_PAD_LEFT ) : (string) $i );
		$ids[] = wpfx_create_user( $login, $login . '@' . $domain, $pass );
	}
	return $ids;
}

function wpfx_op_add_user_to_blog( $op ) {
	wpfx_check( add_user_to_blog( (int) wpfx_req( $op, 'blog_id' ), (int) wpfx_req( $op, 'user_id' ), (string) wpfx_req( $op, 'role' ) ), 'add_user_to_blog' );
	return true;
}

function wpfx_op_remove_user_from_blog( $op ) {
	wpfx_check( remove_user_from_blog( (int) wpfx_req( $op, 'user_id' ), (int) wpfx_req( $op, 'blog_id' ), (int) wpfx_arg( $op, 'reassign', 0 ) ), 'remove_user_from_blog' );
	return true;
}

/**
 * Reference "WPM User Sync" sync-from-scratch: every live non-super-admin
 * user becomes a member of every live site of the network it is not yet a
 * member of, with the site's default role (or subscriber).
 */
function wpfx_op_sync_like_plugin( $op ) {
	$network_id = (int) wpfx_arg( $op, 'network_id', 1 );
	wpfx_network( $network_id );
	$blog_ids = wpfx_int_list( wpfx_arg( $op, 'blog_ids' ) );
	if ( null === $blog_ids ) {
		$blog_ids = wpfx_live_sites( $network_id );
	}
	$users    = wpfx_live_users();
	$restrict = wpfx_int_list( wpfx_arg( $op, 'user_ids' ) );
	if ( null !== $restrict ) {
		$users = array_values( array_intersect( $users, $restrict ) );
	}
	$supers = wpfx_super_admin_logins( $network_id );
	$eligible = array();
	foreach ( $users as $uid ) {
		$u = get_userdata( $uid );
		if ( $u && ! in_array( $u->user_login, $supers, true ) ) {
			$eligible[] = $uid;
		}
	}
	$added = 0;
	foreach ( $blog_ids as $blog_id ) {
		$role = wpfx_site_default_role( $blog_id );
		foreach ( $eligible as $uid ) {
			if ( is_user_member_of_blog( $uid, $blog_id ) ) {
				continue;
			}
			wpfx_check( add_user_to_blog( $blog_id, $uid, $role ), "add_user_to_blog($blog_id, $uid, $role)" );
			$added++;
		}
	}
	return $added;
}

function wpfx_op_set_role( $op ) {
	$blog_id = (int) wpfx_req( $op, 'blog_id' );
	switch_to_blog( $blog_id );
	$u = new WP_User( (int) wpfx_req( $op, 'user_id' ) );
	if ( ! $u->exists() ) {
		restore_current_blog();
		throw new WPFX_Exception( 'user ' . $op['user_id'] . ' does not exist' );
	}
	$u->set_role( (string) wpfx_req( $op, 'role' ) );
	restore_current_blog();
	return true;
}

/**
 * Reference role replication: after the user's role changed on from_blog,
 * copy it to every other live site of the same network where the user is a
 * member and the role exists. Returns the blog ids that were changed.
 */
function wpfx_op_replicate_role_like_plugin( $op ) {
	$user_id   = (int) wpfx_req( $op, 'user_id' );
	$from_blog = (int) wpfx_req( $op, 'from_blog' );
	$role      = (string) wpfx_arg( $op, 'role', '' );
	$site      = get_site( $from_blog );
	if ( ! $site ) {
		throw new WPFX_Exception( "site $from_blog does not exist" );
	}
	$network_id = (int) $site->network_id;
	if ( '' === $role || wpfx_is_super_admin_on( $user_id, $network_id ) ) {
		return array();
	}
	$changed = array();
	foreach ( wpfx_live_sites( $network_id ) as $blog_id ) {
		if ( $blog_id === $from_blog || ! is_user_member_of_blog( $user_id, $blog_id ) ) {
			continue;
		}
		switch_to_blog( $blog_id );
		if ( wp_roles()->is_role( $role ) ) {
			( new WP_User( $user_id ) )->set_role( $role );
			$changed[] = $blog_id;
		}
		restore_current_blog();
	}
	return $changed;
}

function wpfx_op_update_site( $op ) {
	$blog_id = (int) wpfx_req( $op, 'blog_id' );
	$fields  = (array) wpfx_arg( $op, 'fields', array() );
	wpfx_check( wp_update_site( $blog_id, $fields ), 'wp_update_site' );
	return true;
}

function wpfx_op_update_blog_status( $op ) {
	$blog_id = (int) wpfx_req( $op, 'blog_id' );
	foreach ( (array) wpfx_arg( $op, 'fields', array() ) as $k => $v ) {
		wpfx_check( update_blog_status( $blog_id, $k, (string) $v ), "update_blog_status($k)" );
	}
	return true;
}

function wpfx_op_update_option( $op ) {
	switch_to_blog( (int) wpfx_arg( $op, 'blog_id', 1 ) );
	$r = update_option( (string) wpfx_req( $op, 'name' ), wpfx_req( $op, 'value' ) );
	restore_current_blog();
	return (bool) $r;
}

function wpfx_op_delete_option( $op ) {
	switch_to_blog( (int) wpfx_arg( $op, 'blog_id', 1 ) );
	$r = delete_option( (string) wpfx_req( $op, 'name' ) );
	restore_current_blog();
	return (bool) $r;
}

function wpfx_op_get_option( $op ) {
	switch_to_blog( (int) wpfx_arg( $op, 'blog_id', 1 ) );
	$r = get_option( (string) wpfx_req( $op, 'name' ), wpfx_arg( $op, 'default', false ) );
	restore_current_blog();
	return $r;
}

function wpfx_op_add_role( $op ) {
	switch_to_blog( (int) wpfx_req( $op, 'blog_id' ) );
	$caps = array();
	foreach ( (array) wpfx_arg( $op, 'capabilities', array( 'read' => true ) ) as $k => $v ) {
		if ( is_int( $k ) ) {
			$caps[ $v ] = true; // list form: ["read", "edit_posts"]
		} else {
			$caps[ $k ] = (bool) $v;
		}
	}
	$r = add_role( (string) wpfx_req( $op, 'role' ), (string) wpfx_arg( $op, 'display_name', $op['role'] ), $caps );
	restore_current_blog();
	return null !== $r;
}

function wpfx_op_remove_role( $op ) {
	switch_to_blog( (int) wpfx_req( $op, 'blog_id' ) );
	remove_role( (string) wpfx_req( $op, 'role' ) );
	restore_current_blog();
	return true;
}

function wpfx_op_update_user( $op ) {
	global $wpdb;
	$user_id = (int) wpfx_req( $op, 'user_id' );
	$fields  = (array) wpfx_arg( $op, 'fields', array() );
	if ( ! get_userdata( $user_id ) ) {
		throw new WPFX_Exception( "user $user_id does not exist" );
	}
	if ( array_key_exists( 'spam', $fields ) ) {
		// WP >= 5.3 supports 'spam' in wp_update_user() on multisite (fires make_spam_user/make_ham_user).
		wpfx_check(
			wp_update_user(
				array(
					'ID'   => $user_id,
					'spam' => (int) (bool) $fields['spam'],
				)
			),
			'wp_update_user(spam)'
		);
		unset( $fields['spam'] );
	}
	if ( array_key_exists( 'deleted', $fields ) ) {
		// No core API sets users.deleted; core itself only ever writes it directly.
		$wpdb->update( $wpdb->users, array( 'deleted' => (int) (bool) $fields['deleted'] ), array( 'ID' => $user_id ) );
		unset( $fields['deleted'] );
	}
	if ( $fields ) {
		$fields['ID'] = $user_id;
		wpfx_check( wp_update_user( $fields ), 'wp_update_user' );
	}
	clean_user_cache( $user_id );
	return true;
}

function wpfx_op_grant_super_admin( $op ) {
	$user_id    = (int) wpfx_req( $op, 'user_id' );
	$network_id = (int) wpfx_arg( $op, 'network_id', 1 );
	if ( get_current_network_id() === $network_id ) {
		return (bool) grant_super_admin( $user_id );
	}
	$u = get_userdata( $user_id );
	if ( ! $u ) {
		throw new WPFX_Exception( "user $user_id does not exist" );
	}
	$admins = wpfx_super_admin_logins( $network_id );
	if ( in_array( $u->user_login, $admins, true ) ) {
		return false;
	}
	$admins[] = $u->user_login;
	return (bool) update_network_option( $network_id, 'site_admins', $admins );
}

function wpfx_op_revoke_super_admin( $op ) {
	$user_id    = (int) wpfx_req( $op, 'user_id' );
	$network_id = (int) wpfx_arg( $op, 'network_id', 1 );
	if ( get_current_network_id() === $network_id ) {
		return (bool) revoke_super_admin( $user_id );
	}
	$u      = get_userdata( $user_id );
	$admins = wpfx_super_admin_logins( $network_id );
	$new    = array_values( array_diff( $admins, array( $u ? $u->user_login : '' ) ) );
	return (bool) update_network_option( $network_id, 'site_admins', $new );
}

/**
 * Observe the state through WordPress's own eyes.
 *   users: {uid: {login, spam, deleted, super_admin, primary_blog, blogs: [...]}}
 *   blogs: {bid: {network_id, archived, spam, deleted, default_role, roles: [...],
 *                 users: [get_users ids], members: {uid: {member, roles, caps}}}}
 */
function wpfx_op_read_back( $op ) {
	global $wpdb;
	wp_cache_flush();
	$caps     = (array) wpfx_arg( $op, 'caps', array( 'read', 'edit_posts', 'manage_options', 'promote_users' ) );
	$user_ids = wpfx_int_list( wpfx_arg( $op, 'user_ids' ) );
	if ( null === $user_ids ) {
		$user_ids = array_map( 'intval', $wpdb->get_col( "SELECT ID FROM {$wpdb->users} ORDER BY ID" ) );
	}
	$blog_ids = wpfx_int_list( wpfx_arg( $op, 'blog_ids' ) );
	if ( null === $blog_ids ) {
		$blog_ids = array_map( 'intval', $wpdb->get_col( "SELECT blog_id FROM {$wpdb->blogs} ORDER BY blog_id" ) );
	}
	$with_members = (bool) wpfx_arg( $op, 'members', true );

	$network_ids = array_map( 'intval', $wpdb->get_col( "SELECT id FROM {$wpdb->site} ORDER BY id" ) );
	$users       = array();
	foreach ( $user_ids as $uid ) {
		$u = get_userdata( $uid );
		if ( ! $u ) {
			$users[ $uid ] = null;
			continue;
		}
		$users[ $uid ] = array(
			'login'        => $u->user_login,
			'spam'         => (int) $u->spam,
			'deleted'      => (int) $u->deleted,
			'super_admin'  => is_super_admin( $uid ), // on the current network (1)
			'super_admin_networks' => array_values(
				array_filter(
					$network_ids,
					function ( $nid ) use ( $u ) {
						return in_array( $u->user_login, wpfx_super_admin_logins( $nid ), true );
					}
				)
			),
			'primary_blog' => (int) get_user_meta( $uid, 'primary_blog', true ),
			'blogs'        => array_map( 'intval', array_keys( get_blogs_of_user( $uid, true ) ) ),
		);
	}

	$blogs = array();
	foreach ( $blog_ids as $bid ) {
		$site = get_site( $bid );
		if ( ! $site ) {
			$blogs[ $bid ] = null;
			continue;
		}
		switch_to_blog( $bid );
		$entry = array(
			'network_id'   => (int) $site->network_id,
			'path'         => $site->path,
			'archived'     => (int) $site->archived,
			'spam'         => (int) $site->spam,
			'deleted'      => (int) $site->deleted,
			'default_role' => get_option( 'default_role' ),
			'roles'        => array_keys( wp_roles()->get_names() ),
			'users'        => array_map(
				'intval',
				get_users(
					array(
						'blog_id' => $bid,
						'fields'  => 'ID',
						'orderby' => 'ID',
					)
				)
			),
		);
		if ( $with_members ) {
			$members = array();
			foreach ( $user_ids as $uid ) {
				if ( null === $users[ $uid ] ) {
					continue;
				}
				$u      = new WP_User( $uid );
				$caprow = array();
				foreach ( $caps as $cap ) {
					$caprow[ $cap ] = user_can( $u, $cap );
				}
				$members[ $uid ] = array(
					'member' => is_user_member_of_blog( $uid, $bid ),
					'roles'  => array_values( $u->roles ),
					'caps'   => wpfx_map( $caprow ),
				);
			}
			$entry['members'] = wpfx_map( $members );
		}
		restore_current_blog();
		$blogs[ $bid ] = $entry;
	}
	return array(
		'users' => wpfx_map( $users ),
		'blogs' => wpfx_map( $blogs ),
	);
}

function wpfx_op_flush_cache( $op ) {
	wp_cache_flush();
	return true;
}

function wpfx_op_eval( $op ) {
	$code = (string) wpfx_req( $op, 'code' );
	$args = wpfx_arg( $op, 'args', array() );
	$fn   = function ( $__code, $args ) {
		global $wpdb, $wp_roles, $current_site, $current_blog;
		return eval( $__code );
	};
	return $fn( $code, $args );
}

// ---------------------------------------------------------------------------
// Dispatch.
// ---------------------------------------------------------------------------
// "transaction" (default true): run the batch with autocommit off and COMMIT at
// the end. Same rows, but no fsync per write (about 2x faster). DDL (new site
// tables) commits implicitly and the next statement opens a new transaction.
if ( ! isset( $__wpfx_req['transaction'] ) || $__wpfx_req['transaction'] ) {
	$wpdb->query( 'SET autocommit = 0' );
	$GLOBALS['__wpfx']['in_tx'] = true;
}
try {
	foreach ( $__wpfx_ops as $__i => $__op ) {
		$GLOBALS['__wpfx']['op_index'] = $__i;
		if ( ! is_array( $__op ) || empty( $__op['op'] ) || ! is_string( $__op['op'] ) ) {
			throw new WPFX_Exception( 'each op must be an object with an "op" name' );
		}
		$__fn = 'wpfx_op_' . $__op['op'];
		if ( ! preg_match( '/^[a-z_]+$/', $__op['op'] ) || ! function_exists( $__fn ) ) {
			throw new WPFX_Exception( "unknown op '{$__op['op']}'" );
		}
		if ( 'install' !== $__op['op'] && ! is_multisite() ) {
			throw new WPFX_Exception( "op '{$__op['op']}' needs a multisite boot" );
		}
		$__installing = wp_installing();
		$GLOBALS['__wpfx']['results'][] = $__fn( $__op );
		// Every op behaves like its own request: undo leftover state
		// (wpmu_create_blog leaves wp_installing() on, switched blogs...).
		wp_installing( $__installing );
		while ( function_exists( 'ms_is_switched' ) && ms_is_switched() ) {
			restore_current_blog();
		}
	}
} catch ( Throwable $e ) {
	$__msg = $e instanceof WPFX_Exception ? $e->getMessage() : get_class( $e ) . ': ' . $e->getMessage() . ' at ' . $e->getFile() . ':' . $e->getLine();
	wpfx_fail( $__msg );
}
$GLOBALS['__wpfx']['op_index'] = null;
wpfx_emit( array( 'results' => $GLOBALS['__wpfx']['results'] ) );
exit( 0 );
