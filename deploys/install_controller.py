"""pyinfra CLI entry point for deploys/controller.py (`reconcile install-controller` runs
it on this machine; the pyinfra CLI runs it anywhere):

    FLEET_STATE=/srv/fleet/state/fleet.yaml pyinfra @local deploys/install_controller.py

FLEET_STATE is required. RECONCILE_MODE is `watch` (default: the `reconcile watch`
service with a watchdog) or `timer` (a oneshot `reconcile --yes` every
RECONCILE_INTERVAL, default 1min). RECONCILE_BIN defaults to
/opt/fleet-reconciler/.venv/bin/reconcile. For the watch: RECONCILE_CREDENTIALS is
`NAME=FILE,NAME=FILE` (systemd credentials, read as `cred:NAME`),
RECONCILE_CREDENTIALS_ENCRYPTED the same for files `systemd-creds encrypt` made, and
RECONCILE_WATCH_ARGS the watch's own flags (`--http 127.0.0.1:9300`).
"""

import os
import shlex

from deploys.controller import controller, watch_service
from deploys.controller_files import DEFAULT_BIN

STATE = os.environ["FLEET_STATE"]
BIN = os.environ.get("RECONCILE_BIN", DEFAULT_BIN)


def _pairs(variable: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in os.environ.get(variable, "").split(",") if pair)


if os.environ.get("RECONCILE_MODE", "watch") == "timer":
    controller(STATE, BIN, os.environ.get("RECONCILE_INTERVAL", "1min"))
else:
    watch_args = tuple(shlex.split(os.environ.get("RECONCILE_WATCH_ARGS", "")))
    watch_service(
        STATE,
        BIN,
        credentials=_pairs("RECONCILE_CREDENTIALS"),
        watch_args=watch_args,
        encrypted=_pairs("RECONCILE_CREDENTIALS_ENCRYPTED"),
    )
