#!/usr/bin/env bash
# Create .venv and install VeloZ with its locked dependencies. Idempotent: when
# pyproject.toml and requirements.lock are unchanged since the last run it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null; then
    echo "bootstrap: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.veloz-bootstrap
wanted=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ] && .venv/bin/python -c 'import veloz' 2>/dev/null; then
    exit 0
fi
echo "bootstrap: installing VeloZ and its locked dependencies into .venv (a minute or so the first time)" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    --constraint requirements.lock --editable '.[dev]'
echo "$wanted" > "$stamp"
