"""pyinfra CLI entry point for deploys/controller.py.

    FLEET_STATE=/srv/fleet/state/fleet.yaml pyinfra @local deploys/install_controller.py

FLEET_STATE is required. RECONCILE_MODE is `watch` (default: the `reconcile watch`
service with a watchdog) or `timer` (a oneshot `reconcile --yes` every
RECONCILE_INTERVAL, default 1min). RECONCILE_BIN defaults to
/opt/fleet-reconciler/.venv/bin/reconcile.
"""

import os

from deploys.controller import controller, watch_service

STATE = os.environ["FLEET_STATE"]
BIN = os.environ.get("RECONCILE_BIN", "/opt/fleet-reconciler/.venv/bin/reconcile")

if os.environ.get("RECONCILE_MODE", "watch") == "timer":
    controller(STATE, BIN, os.environ.get("RECONCILE_INTERVAL", "1min"))
else:
    watch_service(STATE, BIN)
