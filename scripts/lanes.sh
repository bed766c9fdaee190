#!/usr/bin/env bash
# Test lanes: the same pytest run against other database servers and WordPress versions.
#
#   bash scripts/lanes.sh setup LANE...   prepare what the lanes need (idempotent; all: every lane)
#   bash scripts/lanes.sh env LANE        print the lane's environment (KEY=VALUE lines)
#   bash scripts/lanes.sh stop            stop the MySQL server this script started
#
# Lanes (see README, "Test lanes"):
#   default    MariaDB on 127.0.0.1:3306 + Debian 12's WordPress (/usr/share/wordpress)
#   mysql      MySQL (Debian sid's mysql-server, 9.7.x) on 127.0.0.1:3307 + WordPress 7.1.x
#   mysql-tls  the same MySQL with require_secure_transport=ON and a self-signed CA; the engine
#              connects with WPMSYNC_DB_SSL=true / WPMSYNC_DB_SSL_CA, the fixtures over TLS too
#   wp68       MariaDB on 127.0.0.1:3306 + WordPress 6.8.x (Debian 13, trixie)
#
# Everything lives in .tools/ (ignored by git), so a second run reuses it:
#   .tools/mysql-sid/             debootstrap --variant=minbase --include=mysql-server sid chroot
#   .tools/wordpress-<version>/   dpkg-deb -x of Debian's wordpress_<version>_all.deb (+ the
#                                 libjs-*/php-* packages its symlinks point into), mended
#   .tools/tls/                   ca.pem, server cert/key (CN/SAN 127.0.0.1), other-ca.pem
# Overrides: WPMSYNC_DEBIAN_MIRROR (default: the first non-security mirror apt uses),
# MYSQL_LANE_PORT (3307).
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT_DIR/.tools"
CHROOT="$TOOLS/mysql-sid"
MYSQL_PORT="${MYSQL_LANE_PORT:-3307}"
MYSQL_DATADIR=/var/lib/mysql-wpmsync          # inside the chroot
MYSQL_SOCKET=/run/mysqld/mysqld-wpmsync.sock  # inside the chroot
TLS_DIR="$TOOLS/tls"

log() { printf '[lanes] %s\n' "$*" >&2; }
die() { printf '[lanes] ERROR: %s\n' "$*" >&2; exit 1; }
timed() {  # timed LABEL CMD...: run, then log how long it took
    local label="$1" start=$SECONDS rc=0
    shift
    "$@" || rc=$?
    log "$label: $((SECONDS - start)) s"
    return "$rc"
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else die "run as root (or install sudo)"; fi
fi

mirror() {
    if [ -n "${WPMSYNC_DEBIAN_MIRROR:-}" ]; then echo "${WPMSYNC_DEBIAN_MIRROR%/}"; return; fi
    local m
    m="$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                | sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p'; } \
          | grep -v -e security -e '^$' | head -n1)"
    [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list(.d); set WPMSYNC_DEBIAN_MIRROR"
    echo "${m%/}"
}

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# --------------------------------------------------------------------------
# MySQL (Debian sid) in a chroot, on 127.0.0.1:$MYSQL_PORT
# --------------------------------------------------------------------------
in_chroot() { $SUDO chroot "$CHROOT" "$@"; }
mysql_sock() { in_chroot mysql --protocol=SOCKET --socket="$MYSQL_SOCKET" -uroot "$@"; }
mysql_tcp_ok() {
    in_chroot mysql --protocol=TCP -h127.0.0.1 -P"$MYSQL_PORT" -uroot --password= --ssl-mode=PREFERRED \
        -e 'select 1' >/dev/null 2>&1
}

mysql_chroot() {
    if [ -x "$CHROOT/usr/sbin/mysqld" ] && [ -f "$CHROOT/.wpmsync-complete" ]; then
        log "MySQL chroot present: $(in_chroot mysqld --version 2>/dev/null | head -n1)"
        return
    fi
    command -v debootstrap >/dev/null 2>&1 || { log "installing debootstrap"; apt_install debootstrap; }
    local m
    m="$(mirror)"
    log "debootstrap --variant=minbase --include=mysql-server sid $CHROOT $m"
    $SUDO rm -rf "$CHROOT"
    mkdir -p "$TOOLS"
    # No init system in the chroot: keep mysql-server's maintainer scripts from starting a server.
    $SUDO debootstrap --variant=minbase --include=mysql-server sid "$CHROOT" "$m" >"$TOOLS/mysql-sid.debootstrap.log" 2>&1 \
        || die "debootstrap failed (see $TOOLS/mysql-sid.debootstrap.log)"
    [ -x "$CHROOT/usr/sbin/mysqld" ] || die "mysqld missing from the chroot after debootstrap"
    $SUDO touch "$CHROOT/.wpmsync-complete"
    log "MySQL chroot ready: $(in_chroot mysqld --version | head -n1)"
}

tls_files() {
    if [ -f "$TLS_DIR/ca.pem" ] && [ -f "$TLS_DIR/server-cert.pem" ] && [ -f "$TLS_DIR/other-ca.pem" ]; then
        return
    fi
    command -v openssl >/dev/null 2>&1 || apt_install openssl
    log "making a self-signed CA and a server certificate for 127.0.0.1 in $TLS_DIR"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR"
    (
        cd "$TLS_DIR"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=wpmsync test CA" \
            -keyout ca-key.pem -out ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
            -extfile server.ext -out server-cert.pem 2>/dev/null
        # A CA that did not sign the server's certificate: the engine must refuse the server.
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=some other CA" \
            -keyout other-ca-key.pem -out other-ca.pem 2>/dev/null
        rm -f server.csr server.ext ca.srl
    )
}

mysql_start() {
    mysql_chroot
    tls_files
    # The server reads its certificates from inside the chroot.
    $SUDO install -d -m 0755 "$CHROOT/etc/mysql/wpmsync-tls"
    $SUDO cp "$TLS_DIR/ca.pem" "$TLS_DIR/server-cert.pem" "$TLS_DIR/server-key.pem" "$CHROOT/etc/mysql/wpmsync-tls/"
    in_chroot chown -R mysql:mysql /etc/mysql/wpmsync-tls
    if mysql_tcp_ok; then
        log "MySQL answers on 127.0.0.1:$MYSQL_PORT"
    else
        in_chroot install -d -o mysql -g mysql -m 0755 /run/mysqld
        if [ ! -d "$CHROOT$MYSQL_DATADIR/mysql" ]; then
            log "mysqld --initialize-insecure (datadir $MYSQL_DATADIR in the chroot)"
            in_chroot rm -rf "$MYSQL_DATADIR"
            in_chroot install -d -o mysql -g mysql -m 0750 "$MYSQL_DATADIR"
            in_chroot mysqld --no-defaults --initialize-insecure --user=mysql --datadir="$MYSQL_DATADIR" \
                >"$TOOLS/mysql-sid.init.log" 2>&1 || die "mysqld --initialize-insecure failed (see $TOOLS/mysql-sid.init.log)"
        fi
        log "starting mysqld on 127.0.0.1:$MYSQL_PORT"
        # MySQL's own defaults otherwise (strict sql_mode, utf8mb4_0900_ai_ci): --no-defaults.
        # Only durability is traded for speed (a scratch server): no binary log (on by default
        # since 8.0), the redo log flushed once a second, no doublewrite buffer.
        $SUDO setsid chroot "$CHROOT" mysqld --no-defaults --user=mysql --datadir="$MYSQL_DATADIR" \
            --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket="$MYSQL_SOCKET" --mysqlx=OFF \
            --pid-file=/run/mysqld/mysqld-wpmsync.pid --log-error="$MYSQL_DATADIR/error.log" \
            --ssl-ca=/etc/mysql/wpmsync-tls/ca.pem --ssl-cert=/etc/mysql/wpmsync-tls/server-cert.pem \
            --ssl-key=/etc/mysql/wpmsync-tls/server-key.pem \
            --skip-log-bin --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=OFF \
            --max-connections=500 </dev/null >/dev/null 2>&1 &
        for _ in $(seq 1 120); do
            mysql_sock -e 'select 1' >/dev/null 2>&1 && break
            sleep 0.5
        done
        mysql_sock -e 'select 1' >/dev/null 2>&1 \
            || die "mysqld did not come up within 60 s (see $CHROOT$MYSQL_DATADIR/error.log)"
        # root over TCP from 127.0.0.1 with an empty password, like the MariaDB lane.
        mysql_sock <<'SQL'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
        mysql_tcp_ok || die "root cannot log in over TCP to 127.0.0.1:$MYSQL_PORT"
        log "MySQL answers on 127.0.0.1:$MYSQL_PORT"
    fi
}

mysql_secure_transport() {  # ON|OFF (over TCP: the server answering on the port may be another tree's)
    in_chroot mysql --protocol=TCP -h127.0.0.1 -P"$MYSQL_PORT" -uroot --password= --ssl-mode=PREFERRED \
        -e "SET GLOBAL require_secure_transport = $1" || die "cannot set require_secure_transport=$1"
    log "MySQL require_secure_transport=$1"
}

mysql_stop() {
    local pidfile="$CHROOT/run/mysqld/mysqld-wpmsync.pid"
    if [ -f "$pidfile" ]; then
        local pid
        pid="$(cat "$pidfile")"
        log "stopping mysqld (pid $pid)"
        $SUDO kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
}

# --------------------------------------------------------------------------
# WordPress from Debian's pool
# --------------------------------------------------------------------------
packages_index() {  # suite -> cached, decompressed Packages index of main/binary-all
    local suite="$1" file="$TOOLS/debian-pool/Packages-$1"
    mkdir -p "$TOOLS/debian-pool"
    # Refetched once a day (the pool drops superseded files).
    if [ ! -s "$file" ] || [ -n "$(find "$file" -mmin +1440 2>/dev/null)" ]; then
        curl -fsSL --retry 3 "$(mirror)/dists/$suite/main/binary-all/Packages.xz" | xz -dc >"$file.tmp" \
            || die "cannot read $(mirror)/dists/$suite/main/binary-all/Packages.xz"
        mv "$file.tmp" "$file"
    fi
    echo "$file"
}

pkg_field() {  # index package field
    awk -v pkg="$2" -v field="$3" '
        $0 == "Package: " pkg { p = 1; next }
        /^$/ { p = 0 }
        p && index($0, field ": ") == 1 { print substr($0, length(field) + 3); exit }' "$1"
}

fetch_deb() {  # index package -> path of the fetched .deb
    local index="$1" pkg="$2" filename deb
    filename="$(pkg_field "$index" "$pkg" Filename)"
    [ -n "$filename" ] || die "$pkg not in $index"
    deb="$TOOLS/debian-pool/$(basename "$filename")"
    if [ ! -s "$deb" ]; then
        curl -fsSL --retry 3 -o "$deb.tmp" "$(mirror)/$filename" || die "cannot fetch $(mirror)/$filename"
        mv "$deb.tmp" "$deb"
    fi
    echo "$deb"
}

wp_dir_of() {  # lane -> extracted tree (prints nothing if not prepared)
    local marker="$TOOLS/wordpress-$1.path"
    [ -f "$marker" ] && cat "$marker"
}

wordpress_from_pool() {  # name suite major.minor
    local name="$1" suite="$2" want="$3" index version dest
    index="$(packages_index "$suite")"
    version="$(pkg_field "$index" wordpress Version)"
    [ -n "$version" ] || die "no wordpress package in $suite"
    case "$version" in "$want".*) ;; *) die "$suite ships wordpress $version, the lane wants $want.x" ;; esac
    dest="$TOOLS/wordpress-${version%%+*}"
    if [ -f "$dest/.wpmsync-complete" ] && [ "$(cat "$dest/.wpmsync-complete")" = "$version" ]; then
        log "WordPress $version present in ${dest#"$ROOT_DIR"/}"
    else
        log "WordPress $version from $suite ($(pkg_field "$index" wordpress Filename))"
        rm -rf "$dest"
        mkdir -p "$dest"
        dpkg-deb -x "$(fetch_deb "$index" wordpress)" "$dest"
        # Debian's wordpress replaces bundled libraries by symlinks into other packages
        # (libjs-*, libphp-*, php-getid3): extract those packages, of the same suite, alongside.
        local dep
        for dep in $(pkg_field "$index" wordpress Depends | tr ',|' '\n\n' | sed 's/(.*//; s/[[:space:]]//g' \
                     | grep -E '^(libjs-|libphp-|php-getid3)' | sort -u); do
            if [ -n "$(pkg_field "$index" "$dep" Filename)" ]; then
                dpkg-deb -x "$(fetch_deb "$index" "$dep")" "$dest"
            else
                log "note: $dep is not an arch-all package of $suite; its links fall back to the host"
            fi
        done
        wordpress_mend "$dest"
        echo "$version" >"$dest/.wpmsync-complete"
    fi
    local wp="$dest/usr/share/wordpress"
    [ -f "$wp/wp-settings.php" ] || die "WordPress not found in $wp"
    echo "$wp" >"$TOOLS/wordpress-$name.path"
}

wordpress_mend() {  # dest: point what Debian links outside the package at the extracted tree
    local dest="$1" link target fixed=0 dangling=()
    # /etc/wordpress (htaccess, config) and /var/lib/wordpress (wp-content) ship in the package
    # itself: absolute links into them become links into $dest.
    while IFS= read -r -d '' link; do
        target="$(readlink "$link")"
        case "$target" in
            /etc/wordpress/* | /var/lib/wordpress/* | /usr/share/javascript/* | /usr/share/php/*)
                if [ -e "$dest$target" ]; then ln -sfn "$dest$target" "$link"; fixed=$((fixed + 1)); fi ;;
        esac
        if [ ! -e "$link" ]; then
            # Relative links into packages not fetched: the host's copy, if any.
            local rel host
            rel="$(realpath -m --relative-to="$dest" "$(dirname "$link")/$target")"
            host="/$rel"
            case "$target" in /*) host="$target" ;; esac
            if [ -e "$host" ]; then ln -sfn "$host" "$link"; fixed=$((fixed + 1)); else dangling+=("${link#"$dest"}"); fi
        fi
    done < <(find "$dest/usr/share/wordpress" -type l -print0)
    log "mended $fixed links"
    if [ "${#dangling[@]}" -gt 0 ]; then
        log "links left dangling (nothing the fixtures load): ${dangling[*]}"
    fi
}

# --------------------------------------------------------------------------
lane_env() {
    case "$1" in
        default)
            echo "WPMSYNC_LANE=default"
            echo "WPFIXTURE_WP_PATH=${WPFIXTURE_WP_PATH:-/usr/share/wordpress}" ;;
        mysql | mysql-tls)
            local wp
            wp="$(wp_dir_of wp71)"
            [ -n "$wp" ] || die "lane $1: WordPress 7.1 not prepared (bash scripts/lanes.sh setup $1)"
            echo "WPMSYNC_LANE=$1"
            echo "WPMSYNC_DB_HOST=127.0.0.1"
            echo "WPMSYNC_DB_PORT=$MYSQL_PORT"
            echo "WPFIXTURE_WP_PATH=$wp"
            if [ "$1" = mysql-tls ]; then
                echo "WPMSYNC_DB_SSL=true"
                echo "WPMSYNC_DB_SSL_CA=$TLS_DIR/ca.pem"
                echo "WPMSYNC_TEST_OTHER_CA=$TLS_DIR/other-ca.pem"
            fi ;;
        wp68)
            local wp
            wp="$(wp_dir_of wp68)"
            [ -n "$wp" ] || die "lane wp68: WordPress 6.8 not prepared (bash scripts/lanes.sh setup wp68)"
            echo "WPMSYNC_LANE=wp68"
            echo "WPFIXTURE_WP_PATH=$wp" ;;
        *) die "unknown lane $1 (default, mysql, mysql-tls, wp68)" ;;
    esac
}

setup_lane() {
    case "$1" in
        default) ;;
        mysql)
            timed "MySQL chroot" mysql_chroot
            timed "MySQL server" mysql_start
            mysql_secure_transport OFF
            timed "WordPress 7.1 (sid)" wordpress_from_pool wp71 sid 7.1 ;;
        mysql-tls)
            timed "MySQL chroot" mysql_chroot
            timed "MySQL server" mysql_start
            mysql_secure_transport ON
            timed "WordPress 7.1 (sid)" wordpress_from_pool wp71 sid 7.1 ;;
        wp68)
            timed "WordPress 6.8 (trixie)" wordpress_from_pool wp68 trixie 6.8 ;;
        *) die "unknown lane $1 (default, mysql, mysql-tls, wp68)" ;;
    esac
}

cmd="${1:-}"
shift || true
case "$cmd" in
    setup)
        [ "$#" -gt 0 ] || set -- all
        [ "$1" = all ] && set -- mysql wp68
        for lane in "$@"; do setup_lane "$lane"; done ;;
    env) lane_env "${1:?lane}" ;;
    stop) mysql_stop ;;
    *) die "usage: $0 setup [all|LANE...] | env LANE | stop" ;;
esac
