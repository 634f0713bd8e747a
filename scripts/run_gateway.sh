#!/usr/bin/env bash
# Start VeloZ locally: bootstrap, then the engine in service mode on VELOZ_PORT (8080)
# with the embedded defaults: sim market, sim exchange, journal under ./data/wal.
# Usage: scripts/run_gateway.sh [dev|release|test]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-dev}
case "$preset" in
    dev|release|test) ;;
    *) echo "usage: $0 [dev|release|test]" >&2; exit 2 ;;
esac
scripts/bootstrap.sh
export VELOZ_PRESET="$preset"
exec .venv/bin/veloz engine --port "${VELOZ_PORT:-8080}"
