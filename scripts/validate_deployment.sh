#!/usr/bin/env bash
# The deployment runbook's validation: health, ready, startup, metrics, market data, an
# order round trip, SSE and WebSocket against a running engine or a gateway replica (then
# also its engine link and stream lag), one line per step.
#   scripts/validate_deployment.sh production      # URL from VELOZ_PRODUCTION_URL
#   scripts/validate_deployment.sh https://veloz.example.com [--skip-order]
# With authentication on, set TEST_TOKEN (or VELOZ_API_KEY). Exit 0: every step passed;
# 1: a step failed (the last line names it); 2: a bad target.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
for veloz in "$here/.venv/bin/veloz" /opt/veloz/.venv/bin/veloz; do
    if [ -x "$veloz" ]; then
        exec "$veloz" validate-deployment "$@"
    fi
done
echo "validate_deployment: no VeloZ installation found (run scripts/bootstrap.sh)" >&2
exit 2
