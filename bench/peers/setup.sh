#!/usr/bin/env bash
# Creates bench/peers/.venv (system python3.11) with NautilusTrader for the peer reference run.
# Not a VeloZ dependency. Idempotent: re-running keeps an existing venv with the right version.
set -euo pipefail

NT_VERSION="${NT_VERSION:-1.221.0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3.11}"

if [[ -x "$venv/bin/python" ]] \
    && "$venv/bin/python" -c "import nautilus_trader as n, sys; sys.exit(n.__version__ != '$NT_VERSION')" \
        2>/dev/null; then
    echo "nautilus_trader $NT_VERSION already installed in $venv"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "nautilus_trader==$NT_VERSION"
"$venv/bin/python" -c "import nautilus_trader as n; print('nautilus_trader', n.__version__, 'in $venv')"
