#!/usr/bin/env bash
# The main job on a local default: MariaDB, a demo network built by real WordPress, a sync, a report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m wpmsync demo "$@"
