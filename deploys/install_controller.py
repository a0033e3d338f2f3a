"""pyinfra CLI entry point for deploys/controller.py.

    FLEET_STATE=/srv/fleet/state/fleet.yaml pyinfra @local deploys/install_controller.py

FLEET_STATE is required; RECONCILE_BIN defaults to
/opt/fleet-reconciler/.venv/bin/reconcile and RECONCILE_INTERVAL to 1min.
"""

import os

from deploys.controller import controller

controller(
    os.environ["FLEET_STATE"],
    os.environ.get("RECONCILE_BIN", "/opt/fleet-reconciler/.venv/bin/reconcile"),
    os.environ.get("RECONCILE_INTERVAL", "1min"),
)
