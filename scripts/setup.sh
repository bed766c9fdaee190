#!/usr/bin/env bash
# Machine setup for wpmsync development/CI (Debian 12, run as root).
#
#  * apt packages: mariadb-server mariadb-client php-cli php-mysql wordpress chromium
#    fonts-dejavu-core
#    (installed only when missing; `apt-get update` only then)
#  * MariaDB answering on 127.0.0.1:3306 for root with an EMPTY password
#    (started if needed; unix_socket-only root fixed through the socket)
#  * Python deps: requirements.txt + requirements-dev.txt, in a virtualenv at .venv
#  * Azurite (the Azure Storage emulator the queue tests start) from npm into .tools/
#    (Debian's nodejs + npm installed first when node/npm are missing)
#  * with WPMSYNC_LANES (e.g. "mysql wp68" or all): what those test lanes need, through
#    scripts/lanes.sh (MySQL from Debian sid in a chroot on 127.0.0.1:3307, WordPress 7.1 and
#    6.8 from Debian's pool, all under .tools/)
#
# Idempotent and fast when everything is already in place.
# Environment overrides: DB_HOST (127.0.0.1), DB_PORT (3306), PYTHON (python3),
# WPFIXTURE_WP_PATH (the WordPress tree to check; /usr/share/wordpress),
# SKIP_APT=1, SKIP_PIP=1, SKIP_NPM=1.
set -euo pipefail

DB_HOST="${DB_HOST:-127.0.0.1}"
DB_PORT="${DB_PORT:-3306}"
PYTHON="${PYTHON:-python3}"
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else die "run as root (or install sudo)"; fi
fi

# --------------------------------------------------------------------------
# 1. Debian packages
# --------------------------------------------------------------------------
# chromium (+ a font) drives the browser test, tests/test_e2e.py (Playwright's own browser
# download cannot be used here; Playwright itself comes from requirements-dev.txt).
PACKAGES=(mariadb-server mariadb-client php-cli php-mysql wordpress chromium fonts-dejavu-core)
if [ "${SKIP_APT:-0}" != "1" ]; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh container has no init system: keep maintainer scripts from
        # trying to start services (we start MariaDB ourselves below).
        policy_created=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
            $SUDO chmod +x /usr/sbin/policy-rc.d
            policy_created=1
        fi
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        if [ "$policy_created" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
    else
        log "apt packages present"
    fi
fi

# --------------------------------------------------------------------------
# 2. MariaDB on $DB_HOST:$DB_PORT, root with empty password
# --------------------------------------------------------------------------
MARIADB=mariadb
command -v "$MARIADB" >/dev/null 2>&1 || MARIADB=mysql
command -v "$MARIADB" >/dev/null 2>&1 || die "no mariadb/mysql client found"

tcp_ok() { "$MARIADB" --protocol=TCP -h"$DB_HOST" -P"$DB_PORT" -uroot --password= -e 'select 1' >/dev/null 2>&1; }
sock_ok() { $SUDO "$MARIADB" --protocol=SOCKET -uroot -e 'select 1' >/dev/null 2>&1; }
# Is a server listening at all (even if root cannot log in yet)?
server_up() {
    tcp_ok && return 0
    sock_ok && return 0
    local out
    out="$("$MARIADB" --protocol=TCP -h"$DB_HOST" -P"$DB_PORT" -uroot --password= -e 'select 1' 2>&1 || true)"
    case "$out" in *"Access denied"*) return 0 ;; esac
    return 1
}

if tcp_ok; then
    log "MariaDB answers on $DB_HOST:$DB_PORT as root (empty password)"
else
    if ! server_up; then
        log "starting MariaDB"
        MARIADBD=/usr/sbin/mariadbd
        [ -x "$MARIADBD" ] || MARIADBD=/usr/sbin/mysqld
        [ -x "$MARIADBD" ] || die "MariaDB server binary not found"
        DATADIR="$($MARIADBD --print-defaults 2>/dev/null | tr ' ' '\n' | sed -n 's/^--datadir=//p' | tail -n1)"
        DATADIR="${DATADIR:-/var/lib/mysql}"
        $SUDO install -d -o mysql -g mysql -m 0755 /run/mysqld
        $SUDO install -d -o mysql -g mysql -m 0755 "$DATADIR"
        [ -d /var/log/mysql ] && $SUDO chown mysql:mysql /var/log/mysql || true
        if [ ! -d "$DATADIR/mysql" ]; then
            log "initialising datadir $DATADIR"
            $SUDO mysql_install_db --user=mysql --datadir="$DATADIR" --auth-root-authentication-method=socket >/dev/null
        fi
        # Prefer the init script / systemd when they work; fall back to a plain daemon.
        started=0
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            $SUDO systemctl start mariadb >/dev/null 2>&1 && started=1
        fi
        if [ "$started" = 0 ]; then
            $SUDO start-stop-daemon --start --oknodo --background --quiet \
                --chuid mysql --exec "$MARIADBD" -- \
                --datadir="$DATADIR" --bind-address="$DB_HOST" --port="$DB_PORT" \
                || die "could not start $MARIADBD"
        fi
        for _ in $(seq 1 120); do
            if sock_ok || tcp_ok; then break; fi
            sleep 0.5
        done
        sock_ok || tcp_ok || die "MariaDB did not come up within 60 s (see /var/log/mysql/error.log)"
        log "MariaDB is up"
    fi

    if ! tcp_ok; then
        # Fresh Debian: root@localhost uses unix_socket only. Allow an empty
        # password too, and make sure root@127.0.0.1 exists in case the server
        # runs with skip-name-resolve (then TCP from 127.0.0.1 does not match
        # root@localhost).
        log "enabling empty-password TCP login for root"
        sock_ok || die "cannot reach MariaDB through the unix socket as root to fix authentication"
        $SUDO "$MARIADB" --protocol=SOCKET -uroot <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
        tcp_ok || die "root still cannot log in over TCP to $DB_HOST:$DB_PORT with an empty password"
    fi
    log "MariaDB answers on $DB_HOST:$DB_PORT as root (empty password)"
fi

# --------------------------------------------------------------------------
# 3. PHP + WordPress sanity
# --------------------------------------------------------------------------
command -v php >/dev/null 2>&1 || die "php not found"
php -r 'exit(extension_loaded("mysqli") ? 0 : 1);' || die "php mysqli extension missing (php-mysql)"
# The WordPress tree the fixtures boot: WPFIXTURE_WP_PATH (a lane's), else Debian 12's package.
check_wordpress() {
    local wp="$1"
    [ -f "$wp/wp-settings.php" ] || die "WordPress not found in $wp"
    log "php $(php -r 'echo PHP_VERSION;') + WordPress $(sed -n "s/^\$wp_version = '\(.*\)';/\1/p" "$wp/wp-includes/version.php") in $wp"
}
check_wordpress "${WPFIXTURE_WP_PATH:-/usr/share/wordpress}"

# --------------------------------------------------------------------------
# 4. Python dependencies
# --------------------------------------------------------------------------
# Fast path: skip pip when every requirement is already satisfied.
reqs_satisfied() {
    "$PYTHON" - "$@" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
for path in sys.argv[1:]:
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            sys.exit(1)  # options/includes: let pip decide
        r = Requirement(line)
        if r.marker is not None and not r.marker.evaluate():
            continue
        try:
            v = version(r.name)
        except PackageNotFoundError:
            sys.exit(1)
        if r.specifier and not r.specifier.contains(v, prereleases=True):
            sys.exit(1)
PY
}

if [ "${SKIP_PIP:-0}" != "1" ]; then
    # A virtualenv in .venv: Debian's own python3 refuses system-wide pip installs.
    VENV="$ROOT_DIR/.venv"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
            log "installing python3-venv"
            rm -rf "$VENV"
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \
                || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; }
            "$PYTHON" -m venv "$VENV" || die "cannot create a virtualenv with $PYTHON"
        fi
    fi
    PYTHON="$VENV/bin/python"
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    for req in "$ROOT_DIR/requirements.txt" "$ROOT_DIR/requirements-dev.txt"; do
        [ -f "$req" ] || continue
        if reqs_satisfied "$req"; then
            log "python deps of ${req#"$ROOT_DIR"/} present"
        else
            log "pip install -r ${req#"$ROOT_DIR"/}"
            "$PYTHON" -m pip install -q -r "$req"
        fi
    done
fi

# --------------------------------------------------------------------------
# 5. Azurite (queue emulator for the tests) in .tools/
# --------------------------------------------------------------------------
TOOLS="$ROOT_DIR/.tools"
if [ "${SKIP_NPM:-0}" != "1" ]; then
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        node_missing=()
        command -v node >/dev/null 2>&1 || node_missing+=(nodejs)
        command -v npm >/dev/null 2>&1 || node_missing+=(npm)
        log "installing: ${node_missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends "${node_missing[@]}" >/dev/null
    fi
    command -v node >/dev/null 2>&1 || die "node not found"
    command -v npm >/dev/null 2>&1 || die "npm not found"
    # Azurite 3.37 declares Node >= 22 (and runs on 20); Debian 12's own Node is 18, where the
    # last release that declares older Nodes is 3.35. Both accept --skipApiVersionCheck.
    NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$NODE_MAJOR" -ge 20 ]; then AZURITE_VERSION=3.37.0; else AZURITE_VERSION=3.35.0; fi
    azurite_ok() {
        [ -x "$TOOLS/node_modules/.bin/azurite-queue" ] \
            && grep -q "\"version\": \"$AZURITE_VERSION\"" "$TOOLS/node_modules/azurite/package.json" 2>/dev/null
    }
    if azurite_ok; then
        log "azurite $AZURITE_VERSION present"
    else
        log "npm install azurite@$AZURITE_VERSION into .tools/ (node $(node --version))"
        mkdir -p "$TOOLS"
        npm install --prefix "$TOOLS" --save-exact --no-audit --no-fund --loglevel=error \
            "azurite@$AZURITE_VERSION" >/dev/null || die "npm install azurite@$AZURITE_VERSION failed"
        azurite_ok || die "azurite-queue missing from $TOOLS after npm install"
    fi
fi

if [ "${SKIP_APT:-0}" != "1" ] && [ ! -x /usr/bin/chromium ]; then
    die "/usr/bin/chromium missing after installing chromium"
fi

# --------------------------------------------------------------------------
# 6. Test lanes (WPMSYNC_LANES="mysql wp68", or all): MySQL in a Debian sid chroot on
#    127.0.0.1:3307, WordPress 7.1 / 6.8 from Debian's pool, in .tools/ (scripts/lanes.sh)
# --------------------------------------------------------------------------
if [ -n "${WPMSYNC_LANES:-}" ]; then
    read -r -a lanes <<<"${WPMSYNC_LANES//,/ }"
    [ "${lanes[*]}" = all ] && lanes=(mysql mysql-tls wp68)
    for lane in "${lanes[@]}"; do
        [ "$lane" = default ] && continue
        bash "$ROOT_DIR/scripts/lanes.sh" setup "$lane" || die "lane $lane could not be set up"
        lane_wp="$(bash "$ROOT_DIR/scripts/lanes.sh" env "$lane" | sed -n 's/^WPFIXTURE_WP_PATH=//p')"
        check_wordpress "$lane_wp"
    done
fi

log "done"
