#!/usr/bin/env bash
# Command two: set up, then every check and the whole test suite, fast checks first.
#
#   scripts/test.sh            checks, unit tests, then integration tests on real nspawn
#                              hosts in parallel labs (one per worker)
#   scripts/test.sh -n 1       the same, every test one after another
#   scripts/test.sh -n 4 -k x  other arguments go to both pytest runs
#
# Stage 1 (lint, types, import contracts, schema, unit tests: about 3 minutes) stops the
# run at its first failure. docs/testing.md says how the labs are laid out.
set -euo pipefail
cd "$(dirname "$0")/.."

# Parallel labs: 4 on this 2-core machine, once each test process used a fifth less CPU
# (docs/testing.md has the figures for 2, 3 and 4).
workers=4
args=()
while (($#)); do
    case "$1" in
        -n) workers="$2"; shift 2 ;;
        -n*) workers="${1#-n}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done

started=$SECONDS
stage() { echo "==> $1 ($((SECONDS - started))s in)"; }
pytest=(.venv/bin/pytest -p no:cacheprovider)

bash scripts/setup.sh
stage "ruff";             .venv/bin/ruff check . && .venv/bin/ruff format --check -q .
stage "mypy";             .venv/bin/mypy
stage "import contracts"; .venv/bin/lint-imports
stage "schema is current"
.venv/bin/reconcile schema | diff -q - state/schema.json >/dev/null \
    || { echo "state/schema.json is stale: run 'reconcile schema > state/schema.json'"; exit 1; }
stage "alert rules (promtool)"
promtool=/var/cache/fleet-reconciler/prometheus/promtool
"$promtool" check rules contrib/prometheus/alerts.yml >/dev/null
(cd contrib/prometheus && "$promtool" test rules alerts_test.yml)
# The unit suite is CPU-bound: one worker per core (about 3 minutes on 2 cores, 4 serially).
units=() dist=()
((workers > 1)) && units=(-n auto) && dist=(-n "$workers" --dist loadfile --no-loadscope-reorder)
stage "unit tests"
"${pytest[@]}" tests/unit -q --durations=5 "${units[@]}" "${args[@]}"
stage "integration tests on real hosts, $workers parallel labs"
.venv/bin/python -m tests.fleet.usage -- \
    "${pytest[@]}" tests/integration "${dist[@]}" --durations=15 "${args[@]}"
stage "all green"
