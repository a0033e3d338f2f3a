"""Install fleet-reconciler itself as a systemd service plus timer, so a host reconciles
continuously. This is how the README tells people to run it in production:

    FLEET_STATE=/srv/fleet/state/fleet.yaml pyinfra @local deploys/install_controller.py

Two ways to run: a oneshot service plus timer (`controller`), or the long-running
`reconcile watch` service with a systemd watchdog (`watch_service`, RECONCILE_MODE=watch).
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


def render_watch_service(reconcile_bin: str, state_file: str, watchdog: str) -> str:
    """`reconcile watch` as a long-running service that systemd restarts and watches.

    The loop sends READY=1 and then WATCHDOG=1 pings while it keeps making progress, so
    a hung loop is killed and restarted by systemd.
    """
    return (
        "# Installed by deploys/controller.py.\n"
        "[Unit]\n"
        "Description=fleet-reconciler watch: continuous reconcile of the fleet\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n[Service]\n"
        "Type=notify\n"
        f"ExecStart={reconcile_bin} watch {state_file}\n"
        "ExecReload=/bin/kill -HUP $MAINPID\n"
        f"WorkingDirectory={os.path.dirname(state_file) or '/'}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        f"WatchdogSec={watchdog}\n"
        "KillSignal=SIGTERM\n"
        "KillMode=mixed\n"
        "TimeoutStopSec=30min\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
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


@typed_deploy("fleet-reconciler watch")
def watch_service(state_file: str, reconcile_bin: str, watchdog: str = "60s") -> None:
    """`reconcile watch` as a service: Restart=on-failure and a watchdog."""
    unit = files.put(
        name="fleet-reconciler-watch.service",
        src=StringIO(render_watch_service(reconcile_bin, state_file, watchdog)),
        dest=f"/etc/systemd/system/{SERVICE}-watch.service",
        mode="644",
    )
    systemd.daemon_reload(name="daemon-reload", _if=unit.did_change)
    systemd.service(
        name="watch enabled and running",
        service=f"{SERVICE}-watch.service",
        running=True,
        enabled=True,
        restarted=True,
        _if=unit.did_change,
    )
    systemd.service(
        name="watch enabled and running",
        service=f"{SERVICE}-watch.service",
        running=True,
        enabled=True,
        _if=lambda: not unit.did_change(),
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
