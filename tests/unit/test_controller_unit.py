"""The controller's own watch unit: sandboxed (systemd's own score, offline), with its
secrets as credentials and an environment file, and written in the README verbatim."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deploys.controller import render_watch_service
from deploys.controller_files import APT_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
BIN, STATE = "/opt/fleet-reconciler/.venv/bin/reconcile", "/srv/fleet/state/fleet.yaml"


def exposure(unit: str, tmp_path: Path) -> float:
    path = tmp_path / "fleet-reconciler-watch.service"
    path.write_text(unit)
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return float(found[1])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_watch_unit_is_sandboxed_by_systemds_own_measure(tmp_path: Path) -> None:
    hardened = render_watch_service(BIN, STATE, "60s")
    stated = re.search(r"rates it \*\*([\d.]+) OK\*\*", (ROOT / "README.md").read_text())
    assert stated, "the README states the unit's score"
    assert exposure(hardened, tmp_path) == float(stated[1]) < 4.0  # "OK" is below 4.0
    bare = "\n".join(
        line
        for line in hardened.splitlines()
        if not re.match(r"(Protect|Private|Restrict|SystemCall|Capability)", line)
    )
    assert exposure(bare, tmp_path) > 9.0  # the measure can fail: without the sandbox


def test_secrets_reach_it_as_credentials_and_an_environment_file() -> None:
    unit = render_watch_service(BIN, STATE, "60s", {"restic-password": "/etc/fr/restic"})
    assert "LoadCredential=restic-password:/etc/fr/restic\n" in unit
    assert "EnvironmentFile=-/etc/fleet-reconciler/environment\n" in unit
    assert "StateDirectory=fleet-reconciler\n" in unit and "UMask=0077\n" in unit


def test_the_readme_shows_the_unit_it_installs() -> None:
    assert render_watch_service(BIN, STATE, "60s") in (ROOT / "README.md").read_text()


def test_the_readmes_apt_line_is_the_controllers_packages_and_the_lab_has_them() -> None:
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"^apt-get install -y (.+)$", readme, re.MULTILINE)
    assert line and tuple(line[1].split()) == APT_PACKAGES
    image = (ROOT / "tests" / "fleet" / "build-image.sh").read_text()
    packages = set(
        ",".join(re.findall(r'^PACKAGES="(?:\$PACKAGES,)?([^"]+)"', image, re.M)).split(",")
    )
    assert set(APT_PACKAGES) <= packages, set(APT_PACKAGES) - packages
