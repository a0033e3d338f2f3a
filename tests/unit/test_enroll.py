"""`reconcile enroll`: the user-data's host key is the one remembered in known_hosts, the
controller's key is root's, and a different key for the same address is not replaced
silently."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from reconciler.cli.main import main


def test_enroll_writes_user_data_and_remembers_the_host_key(tmp_path: Path) -> None:
    key = tmp_path / "controller"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    spec = tmp_path / "fleet.yaml"
    spec.write_text(
        "version: 1\nhosts:\n"
        f"  kimi: {{address: 198.18.0.11, ssh_key: {key}, ssh_known_hosts: {known}}}\n"
    )
    data = tmp_path / "user-data"
    assert main(["enroll", "kimi", str(spec), "--user-data", str(data)]) == 0
    config = yaml.safe_load(data.read_text())
    private = tmp_path / "host_key"
    private.write_text(config["ssh_keys"]["ed25519_private"])
    private.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True
    ).stdout.split()[:2]
    assert known.read_text() == f"198.18.0.11 {' '.join(derived)}\n"
    root = config["users"][0]
    assert root["name"] == "root"
    assert (
        root["ssh_authorized_keys"][0].split()[:2]
        == ((tmp_path / "controller.pub").read_text().split()[:2])
    )
    assert config["ssh_deletekeys"] is True and config["ssh_genkeytypes"] == []
    assert main(["enroll", "kimi", str(spec), "--user-data", str(data)]) == 1  # a key is known
    assert main(["enroll", "kimi", str(spec), "--user-data", str(data), "--replace"]) == 0
    assert len(known.read_text().splitlines()) == 1
