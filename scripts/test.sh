#!/usr/bin/env bash
# The test command: installs and starts what the tests need, then runs them all.
#
#   bash scripts/test.sh [--lane NAME] [pytest args...]
#
# The lane (also WPMSYNC_LANE) picks the database server and the WordPress tree; the default lane
# is MariaDB on 127.0.0.1:3306 with Debian 12's WordPress. Other lanes (mysql, mysql-tls, wp68)
# are prepared by scripts/lanes.sh; see README, "Test lanes". Each run writes its JUnit report to
# .tools/reports/junit-<lane>.xml (suite name wpmsync-<lane>).
set -euo pipefail
cd "$(dirname "$0")/.."
LANE="${WPMSYNC_LANE:-default}"
args=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --lane) LANE="${2:?--lane needs a name}"; shift 2 ;;
        --lane=*) LANE="${1#--lane=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ "$LANE" = default ]; then
    bash scripts/setup.sh
else
    WPMSYNC_LANES="$LANE" bash scripts/setup.sh  # also prepares the lane (scripts/lanes.sh)
fi
# The lane's environment: WPMSYNC_LANE, WPFIXTURE_WP_PATH (+ WPMSYNC_DB_HOST/PORT/SSL/SSL_CA).
lane_env="$(bash scripts/lanes.sh env "$LANE")"
while IFS= read -r line; do
    [ -n "$line" ] && export "${line?}"
done <<<"$lane_env"
mkdir -p .tools/reports
exec .venv/bin/python -m pytest -q -o junit_suite_name="wpmsync-$LANE" \
    --junitxml=".tools/reports/junit-$LANE.xml" ${args[@]+"${args[@]}"}
