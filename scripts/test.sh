#!/usr/bin/env bash
# The test command: installs and starts what the tests need, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
