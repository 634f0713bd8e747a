#!/usr/bin/env bash
# Run the whole suite: lint (ruff), types (mypy), the layers (import-linter, contracts in
# pyproject.toml), then pytest. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy
lint-imports --no-cache
exec pytest "$@"
