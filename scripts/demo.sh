#!/usr/bin/env bash
# Command one: set up, boot the local demo fleet (two real systemd hosts, "kimi" and
# "hermes", in 198.18.0.0/24), show the plan, apply it, and show the converged status.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# The demo's backup policies name their repository password as env:RESTIC_PASSWORD.
# This throwaway value is for the local demo fleet only; set your own to override it.
export RESTIC_PASSWORD="${RESTIC_PASSWORD:-demo-fleet-only-password}"
# And the offsite copy's own password (state/demo.yaml, `copies:`), held by no host.
export OFFSITE_PASSWORD="${OFFSITE_PASSWORD:-demo-offsite-only-password}"
# The same for the notification channels' tokens: the demo's Telegram and Gitea are
# stand-ins on hermes that accept any token.
export TELEGRAM_TOKEN="${TELEGRAM_TOKEN:-0:demo-fleet-only-token}"
export GITEA_TOKEN="${GITEA_TOKEN:-demo-fleet-only-token}"
echo "==> booting the demo fleet (fresh hosts)"
.venv/bin/python -m tests.fleet up kimi hermes --prefix demo || exit 1
# The hosts are fresh, so their data starts fresh: --fresh-data says so. It matters when
# this machine ran the demo before (its journal recorded backups of the earlier fleet,
# whose repository went with it); on a first run it changes nothing.
echo "==> reconcile --dry-run --fresh-data state/demo.yaml"
.venv/bin/reconcile --dry-run --fresh-data state/demo.yaml
code=$?
echo "==> exit code $code (0 converged, 2 changes pending, 1 error)"
[[ $code == 0 || $code == 2 ]] || exit 1
echo "==> reconcile --yes --fresh-data state/demo.yaml"
.venv/bin/reconcile --yes --fresh-data state/demo.yaml || exit 1
echo "==> reconcile status state/demo.yaml"
.venv/bin/reconcile status state/demo.yaml || exit 1
echo
echo "Try some drift, then run 'reconcile --dry-run state/demo.yaml' again, e.g.:"
echo "  ssh -i /var/cache/fleet-reconciler/demo.id_ed25519 -o UserKnownHostsFile=/var/cache/fleet-reconciler/demo.known_hosts root@198.18.0.12 systemctl stop ollama"
echo "Keep the failover protection on with 'reconcile watch state/demo.yaml --http 127.0.0.1:9300'"
echo "(the dashboard at http://127.0.0.1:9300/, metrics at /metrics): it renews"
echo "kimi's lease; without it kimi stops its failover services 4 minutes after a run."
echo "Stop the demo fleet with: .venv/bin/python -m tests.fleet down --prefix demo"
