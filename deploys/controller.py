"""Install fleet-reconciler itself as a systemd service plus timer, so a host reconciles
continuously. This is how the README tells people to run it in production:

    FLEET_STATE=/srv/fleet/state/fleet.yaml pyinfra @local deploys/install_controller.py
"""

from __future__ import annotations

import os
from io import StringIO

from pyinfra.operations import files, systemd

from deploys.service import typed_deploy

SERVICE = "fleet-reconciler"


def render_service(reconcile_bin: str, state_file: str) -> str:
    """A oneshot unit: one `reconcile --yes` pass; the timer repeats it."""
    return (
        "# Installed by deploys/controller.py.\n"
        "[Unit]\n"
        "Description=fleet-reconciler: converge the fleet to the desired state\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={reconcile_bin} --yes --lock-timeout 300 {state_file}\n"
        f"WorkingDirectory={os.path.dirname(state_file) or '/'}\n"
        "TimeoutStartSec=30min\n"
    )


def render_timer(interval: str) -> str:
    """Run the service at boot and then `interval` after each run finished."""
    return (
        "# Installed by deploys/controller.py.\n"
        "[Unit]\n"
        "Description=fleet-reconciler: periodic reconcile\n"
        "\n[Timer]\n"
        "OnBootSec=1min\n"
        f"OnUnitInactiveSec={interval}\n"
        "Persistent=true\n"
        "\n[Install]\n"
        "WantedBy=timers.target\n"
    )


@typed_deploy("fleet-reconciler controller")
def controller(state_file: str, reconcile_bin: str, interval: str) -> None:
    service = files.put(
        name="fleet-reconciler.service",
        src=StringIO(render_service(reconcile_bin, state_file)),
        dest=f"/etc/systemd/system/{SERVICE}.service",
        mode="644",
    )
    timer = files.put(
        name="fleet-reconciler.timer",
        src=StringIO(render_timer(interval)),
        dest=f"/etc/systemd/system/{SERVICE}.timer",
        mode="644",
    )
    systemd.daemon_reload(
        name="daemon-reload", _if=lambda: service.did_change() or timer.did_change()
    )
    systemd.service(
        name="timer enabled and running", service=f"{SERVICE}.timer", running=True, enabled=True
    )
