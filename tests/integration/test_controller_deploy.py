"""deploys/install_controller.py under the plain pyinfra CLI installs the reconcile timer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fleet import lab as fleet_lab
from tests.integration.conftest import ROOT


def test_controller_units_installed_by_plain_pyinfra(lab: fleet_lab.Lab, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.py"
    h1 = lab.host("h1")
    inventory.write_text(
        f"hosts = [('h1', {{'ssh_hostname': {h1.address!r}, 'ssh_key': {lab.ssh_key!r}, "
        f"'ssh_known_hosts_file': {lab.known_hosts!r}, 'ssh_strict_host_key_checking': 'yes'}})]\n"
    )
    env = {**os.environ, "FLEET_STATE": "/srv/fleet/state/fleet.yaml", "RECONCILE_INTERVAL": "5min"}
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
