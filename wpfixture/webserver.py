"""Serve a REAL WordPress Multisite network over HTTP on localhost, for browser tests.

Debian's WordPress (``/usr/share/wordpress``, read-only) is served by PHP's built-in web server
(``php -S 127.0.0.1:PORT router.php``) from a private document root in a temporary directory:

* ``docroot/`` holds a symlink to every file and folder of WordPress except ``wp-config.php``
  and ``wp-content``; ``docroot/wp-config.php`` is ours (it never reads ``/etc/wordpress``):
  the database constants, ``$table_prefix``, the multisite constants, fixed salts, no cron, no
  outside HTTP (``WP_HTTP_BLOCK_EXTERNAL`` with ``WP_ACCESSIBLE_HOSTS`` = ``127.0.0.1,localhost``),
  ``WPMU_PLUGIN_DIR`` and any extra constants (e.g. the wpmsync plugin's three) from a JSON file.
* ``docroot/wp-content/`` is a private content directory (empty ``plugins/``, ``themes/``,
  ``uploads/``: the admin screens need no theme, the front end falls back to theme-compat;
  ``mu-plugins`` is a symlink to the caller's folder so its static files are served too).
  ``WP_DEBUG_LOG`` goes to ``debug.log`` (:meth:`WordPressServer.debug_log_text`), never to
  the page.
* ``router.php`` does what WordPress's ``.htaccess`` for a *subdirectory* network does
  (``/site1/wp-admin/...`` -> ``/wp-admin/...``, ``/site1/wp-login.php`` -> ``/wp-login.php``,
  ``/site1/wp-includes/...`` -> ``/wp-includes/...``, everything else -> ``index.php``), defines
  ``ABSPATH`` as the document root (so WordPress's ``wp-load.php`` finds our config, not
  Debian's), runs PHP files at global scope and serves static files itself.
* A small fixture plugin (loaded on ``muplugins_loaded`` from the config, not from the plugin
  folder) keeps the browser offline as well: no Gravatar images, no emoji images from
  ``s.w.org``, no update checks; mail is not sent but kept in a mailbox file
  (:meth:`WordPressServer.mails`), so a test can follow an activation link as a person would.

The domain: the browser must send the network's domain as ``Host``. Multisite cannot carry a
port in its domain: ``wp_normalize_site_data()`` runs every new site's domain through
``sanitize_user( $domain, true )``, which drops the ``:`` (``localhost:8123`` becomes
``localhost8123`` for every site but the main one), and ``wp-admin/network.php`` refuses ports
outright. So the network is built for a plain host name (``localhost``) and the server listens
on a free port; the browser maps the name to that port
(``--host-resolver-rules="MAP localhost 127.0.0.1:PORT"``, :attr:`WordPressServer.host_rule`)
and sends ``Host: localhost``, exactly what WordPress expects. Cookies are host-only for a
subdirectory network (``COOKIE_DOMAIN`` false), so login works. Non-browser clients connect to
``127.0.0.1:PORT`` with the ``Host`` header (:meth:`WordPressServer.get`).

Usage::

    build_network("wpmst_e2e", "wp_", sites=2, users=3, domain="localhost")
    port = free_port()
    with serve_wordpress("wpmst_e2e", "wp_", port=port, mu_plugins_dir="wordpress/mu-plugins",
                         constants={"WPMSYNC_ENDPOINT": "http://127.0.0.1:7071/api"}) as base_url:
        ...  # base_url == "http://localhost"; Chromium: --host-resolver-rules=MAP localhost 127.0.0.1:<port>
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import db as _db
from .wordpress import DEFAULT_WP_PATH

__all__ = ["serve_wordpress", "WordPressServer", "free_port", "network_domain"]

START_TIMEOUT = 20.0
MYSQLI_CLIENT_SSL, MYSQLI_CLIENT_SSL_DONT_VERIFY_SERVER_CERT = 2048, 64  # PHP's mysqli flags

# ---------------------------------------------------------------------------------------------
# PHP sources written into the server's temporary directory.
# ---------------------------------------------------------------------------------------------

WP_CONFIG_PHP = r"""<?php
/* wpfixture web server: our own wp-config (Debian's looks in /etc/wordpress). Generated. */
$__wpfx_cfg = json_decode( file_get_contents( __DIR__ . '/../wpfixture-server.json' ), true );
foreach ( $__wpfx_cfg['constants'] as $__wpfx_k => $__wpfx_v ) {
	if ( ! defined( $__wpfx_k ) ) {
		define( $__wpfx_k, $__wpfx_v );
	}
}
$table_prefix = $__wpfx_cfg['table_prefix'];
// The fixture plugin, loaded on muplugins_loaded, right after the mu-plugins (a hook may be
// registered before plugin.php exists: WP_Hook::build_preinitialized_hooks()).
$GLOBALS['wp_filter']['muplugins_loaded'][ -1000 ][] = array(
	'function'      => function () {
		require_once __DIR__ . '/../wpfixture-offline.php';
	},
	'accepted_args' => 0,
);
unset( $__wpfx_cfg, $__wpfx_k, $__wpfx_v );
require_once ABSPATH . 'wp-settings.php';
"""

OFFLINE_PHP = r"""<?php
/* wpfixture web server: keep WordPress AND the browser offline. Generated. */
// No avatars: they are images from secure.gravatar.com.
add_filter( 'pre_option_show_avatars', '__return_zero' );
add_filter( 'pre_get_avatar', function () { return ''; } );
add_filter( 'get_avatar_url', function () { return 'data:image/gif;base64,R0lGODlhAQABAAAAACw='; } );
// No emoji detection (it loads twemoji images from s.w.org when the browser lacks emoji fonts).
remove_action( 'admin_print_scripts', 'print_emoji_detection_script' );
remove_action( 'admin_print_styles', 'print_emoji_styles' );
remove_action( 'wp_head', 'print_emoji_detection_script', 7 );
remove_action( 'wp_print_styles', 'print_emoji_styles' );
add_filter( 'emoji_svg_url', '__return_false' );
// No update checks (they would only fail, loudly, against api.wordpress.org).
foreach ( array( 'update_core', 'update_plugins', 'update_themes' ) as $__wpfx_t ) {
	add_filter(
		'pre_site_transient_' . $__wpfx_t,
		function () {
			return (object) array(
				'last_checked'    => time(),
				'version_checked' => $GLOBALS['wp_version'],
				'updates'         => array(),
				'response'        => array(),
				'no_update'       => array(),
				'checked'         => array(),
				'translations'    => array(),
			);
		}
	);
}
unset( $__wpfx_t );
// No mail: every message lands in a mailbox file instead (WordPressServer.mails()).
if ( ! function_exists( 'wp_mail' ) ) {
	function wp_mail( $to, $subject, $message, $headers = '', $attachments = array() ) {
		$line = wp_json_encode(
			array(
				'to'      => is_array( $to ) ? array_values( $to ) : array_map( 'trim', explode( ',', (string) $to ) ),
				'subject' => (string) $subject,
				'message' => (string) $message,
				'headers' => $headers,
				'time'    => time(),
			)
		);
		file_put_contents( __DIR__ . '/mail.jsonl', $line . "\n", FILE_APPEND | LOCK_EX );
		return true;
	}
}
// No HTTP to anything but this machine (WP_HTTP_BLOCK_EXTERNAL does it too; belt and braces).
add_filter(
	'pre_http_request',
	function ( $pre, $args, $url ) {
		$host = strtolower( (string) wp_parse_url( $url, PHP_URL_HOST ) );
		if ( in_array( $host, array( '127.0.0.1', 'localhost', '::1', '[::1]' ), true ) ) {
			return $pre;
		}
		return new WP_Error( 'wpfixture_offline', 'wpfixture: no HTTP to ' . $host );
	},
	1,
	3
);
"""

ROUTER_PHP = r"""<?php
/*
 * wpfixture web server router for `php -S`: WordPress's .htaccess for a subdirectory network.
 *   RewriteRule ^([_0-9a-zA-Z-]+/)?wp-admin$ $1wp-admin/ [R=301,L]
 *   RewriteCond %{REQUEST_FILENAME} -f [OR] -d  ->  as is
 *   RewriteRule ^([_0-9a-zA-Z-]+/)?(wp-(content|admin|includes).*) $2 [L]
 *   RewriteRule ^([_0-9a-zA-Z-]+/)?(.*\.php)$ $2 [L]
 *   RewriteRule . index.php [L]
 * Generated.
 */
$__wpfx_root = __DIR__ . '/docroot';
define( 'ABSPATH', $__wpfx_root . '/' );

$__wpfx_path = rawurldecode( (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );
if ( '' === $__wpfx_path || '/' !== $__wpfx_path[0] ) {
	$__wpfx_path = '/' . $__wpfx_path;
}
if ( false !== strpos( $__wpfx_path, "\0" ) || preg_match( '#(^|/)\.\.(/|$)#', $__wpfx_path ) ) {
	http_response_code( 400 );
	echo 'Bad Request';
	return true;
}
if ( preg_match( '#^/([_0-9a-zA-Z-]+/)?wp-admin$#', $__wpfx_path ) ) {
	$__wpfx_q = parse_url( $_SERVER['REQUEST_URI'], PHP_URL_QUERY );
	header( 'Location: ' . $__wpfx_path . '/' . ( $__wpfx_q ? '?' . $__wpfx_q : '' ), true, 301 );
	return true;
}
if ( file_exists( $__wpfx_root . $__wpfx_path ) ) {
	$__wpfx_target = $__wpfx_path;
} elseif ( preg_match( '#^/([_0-9a-zA-Z-]+/)?(wp-(content|admin|includes).*)#', $__wpfx_path, $__wpfx_m ) ) {
	$__wpfx_target = '/' . $__wpfx_m[2];
} elseif ( preg_match( '#^/([_0-9a-zA-Z-]+/)?(.*\.php)$#', $__wpfx_path, $__wpfx_m ) ) {
	$__wpfx_target = '/' . $__wpfx_m[2];
} else {
	$__wpfx_target = '/index.php';
}
if ( is_dir( $__wpfx_root . $__wpfx_target ) ) {
	$__wpfx_target = rtrim( $__wpfx_target, '/' ) . '/index.php';  // DirectoryIndex
}
$__wpfx_file = $__wpfx_root . $__wpfx_target;
if ( ! is_file( $__wpfx_file ) ) {
	http_response_code( 404 );
	header( 'Content-Type: text/plain' );
	echo 'Not Found';
	return true;
}
if ( '.php' === substr( $__wpfx_target, -4 ) ) {
	$_SERVER['SCRIPT_NAME']     = $__wpfx_target;
	$_SERVER['PHP_SELF']        = $__wpfx_target;
	$_SERVER['SCRIPT_FILENAME'] = $__wpfx_file;
	$_SERVER['DOCUMENT_ROOT']   = $__wpfx_root;
	chdir( dirname( $__wpfx_file ) );
	unset( $__wpfx_path, $__wpfx_m, $__wpfx_q, $__wpfx_target, $__wpfx_root );
	require $__wpfx_file;  // at global scope, as if it were the script itself
	return true;
}
$__wpfx_types = array(
	'css' => 'text/css', 'js' => 'application/javascript', 'json' => 'application/json',
	'map' => 'application/json', 'png' => 'image/png', 'gif' => 'image/gif', 'jpg' => 'image/jpeg',
	'jpeg' => 'image/jpeg', 'svg' => 'image/svg+xml', 'ico' => 'image/x-icon', 'webp' => 'image/webp',
	'woff' => 'font/woff', 'woff2' => 'font/woff2', 'ttf' => 'font/ttf', 'eot' => 'application/vnd.ms-fontobject',
	'html' => 'text/html', 'htm' => 'text/html', 'txt' => 'text/plain', 'xml' => 'application/xml',
);
$__wpfx_ext = strtolower( pathinfo( $__wpfx_file, PATHINFO_EXTENSION ) );
header( 'Content-Type: ' . ( $__wpfx_types[ $__wpfx_ext ] ?? 'application/octet-stream' ) );
header( 'Content-Length: ' . filesize( $__wpfx_file ) );
header( 'Cache-Control: public, max-age=3600' );
if ( 'HEAD' !== $_SERVER['REQUEST_METHOD'] ) {
	readfile( $__wpfx_file );
}
return true;
"""

# ---------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (build the network with ``localhost:<port>``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def network_domain(db_name: str, prefix: str, network_id: int = 1, **db_kwargs: Any) -> tuple[str, str]:
    """(domain, path) of the network as stored in ``{prefix}site``."""
    rows = _db.query(db_name, f"SELECT domain, path FROM `{prefix}site` WHERE id = %s", (network_id,), **db_kwargs)
    if not rows:
        raise RuntimeError(f"no network {network_id} in {db_name} with table prefix {prefix!r}")
    return str(rows[0][0]), str(rows[0][1])


def _salts() -> dict[str, str]:
    names = ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
             "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")
    return {n: f"wpfixture-web-{n.lower()}-not-secret" for n in names}


class WordPressServer:
    """``php -S`` serving one network. Use :func:`serve_wordpress` (a context manager)."""

    def __init__(
        self,
        db_name: str,
        prefix: str = "wp_",
        *,
        port: int | None = None,
        mu_plugins_dir: str | os.PathLike | None = None,
        constants: Mapping[str, Any] | None = None,
        wp_path: str | os.PathLike = DEFAULT_WP_PATH,
        db_host: str | None = None,
        db_port: int | None = None,
        db_user: str | None = None,
        db_password: str | None = None,
        workers: int = 4,
        php: str | None = None,
        debug_log: bool = True,
    ) -> None:
        self.db_name, self.prefix = db_name, prefix
        self.db_kwargs = {  # unset: the lane's server (wpfixture.db reads the environment)
            "host": _db.default_host() if db_host is None else db_host,
            "port": _db.default_port() if db_port is None else int(db_port),
            "user": _db.default_user() if db_user is None else db_user,
            "password": _db.default_password() if db_password is None else db_password,
        }
        self.domain, self.path = network_domain(db_name, prefix, **self.db_kwargs)
        if ":" in self.domain:
            raise ValueError(
                f"the network's domain {self.domain!r} has a port: WordPress drops the ':' from the domain "
                "of every new site (wp_normalize_site_data); build the network for a plain host name "
                "(domain='localhost') and map it to the port in the client")
        self.port = int(port) if port else free_port()
        self.base_url = f"http://{self.domain}" + self.path.rstrip("/")
        self.wp_path = Path(wp_path)
        self.mu_plugins_dir = Path(mu_plugins_dir).resolve() if mu_plugins_dir else None
        self.constants = dict(constants or {})
        self.workers = workers
        self.php = php or os.environ.get("WPFIXTURE_PHP") or shutil.which("php") or "php"
        self.debug_log = debug_log
        self.tmp: Path | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def host_rule(self) -> str:
        """Chromium's ``--host-resolver-rules`` entry sending the network's domain here."""
        return f"MAP {self.domain} 127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        """GET ``path`` (e.g. ``/site1/wp-login.php``) from the server, as the browser would (no
        redirects followed): (status, headers, body)."""
        class _NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={"Host": self.domain})
        try:
            with urllib.request.build_opener(_NoRedirect).open(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    # -- files -------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "php-server.log"

    @property
    def debug_log_path(self) -> Path:
        """WordPress's ``WP_DEBUG_LOG`` file (notices, warnings, fatal errors)."""
        assert self.tmp is not None
        return self.tmp / "debug.log"

    def _write_tree(self) -> None:
        assert self.tmp is not None
        root = self.tmp / "docroot"
        root.mkdir()
        for entry in sorted(self.wp_path.iterdir()):
            if entry.name in ("wp-config.php", "wp-content"):
                continue
            (root / entry.name).symlink_to(entry)
        content = root / "wp-content"
        for sub in ("plugins", "uploads", "themes"):
            (content / sub).mkdir(parents=True)
        mu_dir = self.mu_plugins_dir
        if mu_dir is None:
            mu_dir = self.tmp / "mu-plugins-empty"
            mu_dir.mkdir()
        (content / "mu-plugins").symlink_to(mu_dir)

        constants: dict[str, Any] = {
            "DB_NAME": self.db_name,
            "DB_USER": self.db_kwargs["user"],
            "DB_PASSWORD": self.db_kwargs["password"],
            "DB_HOST": f"{self.db_kwargs['host']}:{self.db_kwargs['port']}",
            "DB_CHARSET": "utf8mb4",
            "DB_COLLATE": "",
            **_salts(),
            "WP_ALLOW_MULTISITE": True,
            "MULTISITE": True,
            "SUBDOMAIN_INSTALL": False,
            "DOMAIN_CURRENT_SITE": self.domain,
            "PATH_CURRENT_SITE": self.path,
            "SITE_ID_CURRENT_SITE": 1,
            "BLOG_ID_CURRENT_SITE": 1,
            "WP_CONTENT_DIR": str(content),
            "WP_CONTENT_URL": f"http://{self.domain}/wp-content",
            # The real path: plugins_url(__FILE__) compares it with the plugin's (resolved) __FILE__.
            "WPMU_PLUGIN_DIR": str(mu_dir),
            "WPMU_PLUGIN_URL": f"http://{self.domain}/wp-content/mu-plugins",
            "DISABLE_WP_CRON": True,
            "WP_HTTP_BLOCK_EXTERNAL": True,
            "WP_ACCESSIBLE_HOSTS": "127.0.0.1,localhost",
            "AUTOMATIC_UPDATER_DISABLED": True,
            "WP_AUTO_UPDATE_CORE": False,
            "DISALLOW_FILE_MODS": True,
            "WP_DISABLE_FATAL_ERROR_HANDLER": True,
            "WP_DEBUG": self.debug_log,
            "WP_DEBUG_DISPLAY": False,
            "WP_DEBUG_LOG": str(self.debug_log_path) if self.debug_log else False,
        }
        if _db.default_ssl_ca() is not None:  # the lane's server wants TLS (require_secure_transport)
            constants["MYSQL_CLIENT_FLAGS"] = MYSQLI_CLIENT_SSL | MYSQLI_CLIENT_SSL_DONT_VERIFY_SERVER_CERT
        constants.update(self.constants)
        (self.tmp / "wpfixture-server.json").write_text(
            json.dumps({"constants": constants, "table_prefix": self.prefix}, indent=1))
        (root / "wp-config.php").write_text(WP_CONFIG_PHP)
        (self.tmp / "wpfixture-offline.php").write_text(OFFLINE_PHP)
        (self.tmp / "router.php").write_text(ROUTER_PHP)

    # -- process -----------------------------------------------------------------------------
    def start(self) -> str:
        self.tmp = Path(tempfile.mkdtemp(prefix="wpfixture-web-"))
        self._write_tree()
        env = dict(os.environ)
        if self.workers > 1:
            env["PHP_CLI_SERVER_WORKERS"] = str(self.workers)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.php, "-d", "display_errors=0", "-d", "log_errors=1", "-d", "memory_limit=512M",
                 "-d", "variables_order=EGPCS", "-S", f"127.0.0.1:{self.port}", "-t",
                 str(self.tmp / "docroot"), str(self.tmp / "router.php")],
                cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,  # its own process group: the workers end with it
            )
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                # Straight to 127.0.0.1 with the network's Host header: no name resolution.
                status, _, body = self.get("/wp-login.php", timeout=10)
                if status == 200:
                    return self.base_url
                last = f"HTTP {status}: {body[:500]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        out = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        self.stop()
        raise RuntimeError(f"WordPress did not come up on 127.0.0.1:{self.port} ({last})\n{out}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        elif proc is not None:
            # The server is gone; its workers (same process group) may not be.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def mails(self, to: str | None = None) -> list[dict[str, Any]]:
        """Mail WordPress "sent" (``wp_mail``), oldest first: {to: [...], subject, message, headers}."""
        if self.tmp is None or not (self.tmp / "mail.jsonl").exists():
            return []
        out = [json.loads(line) for line in (self.tmp / "mail.jsonl").read_text().splitlines() if line.strip()]
        return [m for m in out if to is None or to in m["to"]]

    def debug_log_text(self) -> str:
        try:
            return self.debug_log_path.read_text(errors="replace")
        except (FileNotFoundError, AssertionError):
            return ""


@contextlib.contextmanager
def serve_wordpress(
    db_name: str,
    prefix: str = "wp_",
    port: int | None = None,
    mu_plugins_dir: str | os.PathLike | None = None,
    constants: Mapping[str, Any] | None = None,
    *,
    keep_files: bool = False,
    server: list | None = None,
    **kwargs: Any,
) -> Iterator[str]:
    """Serve the network of ``db_name``/``prefix`` with ``php -S`` on ``127.0.0.1:port`` (a free
    port by default); yields its base URL, ``http://<network domain>`` (e.g. ``http://localhost``):
    map that host to the port in the browser (:attr:`WordPressServer.host_rule`).

    ``mu_plugins_dir`` becomes ``WPMU_PLUGIN_DIR``; ``constants`` are defined in wp-config.php
    (they override the defaults). Pass a list as ``server`` to receive the
    :class:`WordPressServer` (its ``debug_log_text()``, ``log_path``...). The PHP server (and
    its workers) is stopped at the end and the temporary directory removed (unless
    ``keep_files``)."""
    srv = WordPressServer(db_name, prefix, port=port, mu_plugins_dir=mu_plugins_dir, constants=constants, **kwargs)
    if server is not None:
        server.append(srv)
    try:
        yield srv.start()
    finally:
        srv.stop()
        if not keep_files:
            srv.cleanup()
