"""deploys/install_controller.py under the plain pyinfra CLI: the timer mode and the watch mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fleet import lab as fleet_lab
from tests.integration.conftest import ROOT

# Test hosts cannot install our venv (they have no network), so the watch unit runs a
# stand-in that speaks the same notify protocol as `reconcile watch`: READY=1, WATCHDOG=1.
NOTIFY_STANDIN = b"""#!/usr/bin/python3
import os, socket, time
def notify(msg):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(os.environ["NOTIFY_SOCKET"]); s.sendall(msg); s.close()
notify(b"READY=1")
while True:
    time.sleep(10); notify(b"WATCHDOG=1")
"""


def install_controller(lab: fleet_lab.Lab, tmp_path: Path, **settings: str) -> None:
    inventory = tmp_path / "inventory.py"
    h1 = lab.host("h1")
    inventory.write_text(
        f"hosts = [('h1', {{'ssh_hostname': {h1.address!r}, 'ssh_key': {lab.ssh_key!r}, "
        f"'ssh_known_hosts_file': {lab.known_hosts!r}, 'ssh_strict_host_key_checking': 'yes'}})]\n"
    )
    env = {**os.environ, "FLEET_STATE": "/srv/fleet/state/fleet.yaml", **settings}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "pyinfra"),
            "-y",
            str(inventory),
            "deploys/install_controller.py",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_timer_mode(lab: fleet_lab.Lab, tmp_path: Path) -> None:
    install_controller(lab, tmp_path, RECONCILE_MODE="timer", RECONCILE_INTERVAL="5min")
    service = fleet_lab.ssh(lab, "h1", "cat /etc/systemd/system/fleet-reconciler.service")
    assert (
        "ExecStart=/opt/fleet-reconciler/.venv/bin/reconcile --yes --lock-timeout 300 /srv/fleet/state/fleet.yaml"
        in service
    )
    timer = fleet_lab.ssh(
        lab,
        "h1",
        "systemctl is-enabled fleet-reconciler.timer; systemctl is-active fleet-reconciler.timer; systemctl show -p TimersMonotonic fleet-reconciler.timer",
    )
    assert timer.splitlines()[:2] == ["enabled", "active"]
    assert "OnUnitInactiveUSec=5min" in timer


def test_watch_mode_runs_under_systemd_with_a_watchdog(lab: fleet_lab.Lab, tmp_path: Path) -> None:
    fleet_lab.ssh(
        lab,
        "h1",
        "install -m 755 /dev/stdin /usr/local/bin/notify-standin && mkdir -p /srv/fleet/state",
        stdin=NOTIFY_STANDIN,
    )
    install_controller(lab, tmp_path, RECONCILE_BIN="/usr/local/bin/notify-standin")
    unit = fleet_lab.ssh(
        lab,
        "h1",
        "systemctl show -p Type,Restart,WatchdogUSec,UnitFileState,ActiveState fleet-reconciler-watch.service",
    )
    assert sorted(unit.split()) == [
        "ActiveState=active",
        "Restart=on-failure",
        "Type=notify",
        "UnitFileState=enabled",
        "WatchdogUSec=1min",
    ]
    assert "notify-standin watch /srv/fleet/state/fleet.yaml" in fleet_lab.ssh(
        lab, "h1", "ps -eo args"
    )
