#!/usr/bin/env bash
# Command one: set up, boot the local demo fleet (two real systemd hosts, "kimi" and
# "hermes", in 198.18.0.0/24) and show the plan that would converge it.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
echo "==> booting the demo fleet"
.venv/bin/python -m tests.fleet up kimi hermes --prefix demo || exit 1
echo "==> reconcile --dry-run state/demo.yaml"
.venv/bin/reconcile --dry-run state/demo.yaml
code=$?
echo "==> exit code $code (0 converged, 2 changes pending, 1 error)"
echo "    stop the demo fleet with: .venv/bin/python -m tests.fleet down --prefix demo"
[[ $code == 0 || $code == 2 ]]
