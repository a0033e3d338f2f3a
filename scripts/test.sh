#!/usr/bin/env bash
# Command two: set up, then run every check and the whole test suite
# (unit tests, and integration tests against real nspawn hosts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "==> ruff";        .venv/bin/ruff check . && .venv/bin/ruff format --check -q .
echo "==> mypy";        .venv/bin/mypy
echo "==> import contracts"; .venv/bin/lint-imports -q 2>/dev/null || .venv/bin/lint-imports
echo "==> schema is current"
.venv/bin/reconcile schema | diff -q - state/schema.json >/dev/null \
    || { echo "state/schema.json is stale: run 'reconcile schema > state/schema.json'"; exit 1; }
echo "==> pytest"
exec .venv/bin/pytest -p no:cacheprovider "$@"
