"""The runbook's Scenario 5, "Complete Infrastructure Loss": both VPSs are gone (h1, the
primary with the agent's SQLite data, and h2, the backup host holding the restic
repository). Two new VPSs (h3, h4) come up at new addresses. The operator changes the
two addresses in the state file, enrolls each new host (`reconcile enroll`: a host key
the controller made, nothing trusted on first use), and gives each its user-data (done
here as cloud-init would: the host key and root's key in place). The plan says the
primary is rebuilt from the copy on the controller's disk; one apply restores it before
the agent starts, the next brings up a new repository. Time from the first `enroll` to
the fleet back is printed (docs: README, "A new VPS after a total loss")."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fleet import lab as fleet_lab
from tests.integration.backups.conftest import ENV, GIT_SETUP, PASSWORD, write_spec
from tests.integration.conftest import run_reconcile

COPY_PASSWORD = "test-only-copy-password-5c3e"


@pytest.fixture(scope="module")
def four() -> Iterator[fleet_lab.Lab]:
    """h1 and h2, the fleet that is lost; h3 and h4, the new VPSs (blank)."""
    if os.geteuid() != 0:
        pytest.skip("integration tests boot systemd-nspawn hosts and need root")
    prefix = fleet_lab.test_prefix()
    booted = fleet_lab.up(["h1", "h2", "h3", "h4"], prefix=prefix)
    try:
        yield booted
    finally:
        fleet_lab.down(prefix)


def cloud_init(lab: fleet_lab.Lab, name: str, user_data: Path) -> None:
    """What cloud-init does with the user-data `enroll` wrote: the image's host keys
    replaced by the controller's, root's authorized key; sshd restarted."""
    config = yaml.safe_load(user_data.read_text())
    keys = config["ssh_keys"]
    assert config.get("ssh_deletekeys") is True, config
    script = (
        "set -e; rm -f /etc/ssh/ssh_host_*; umask 077; "
        "cat > /etc/ssh/ssh_host_ed25519_key <<'KEY'\n"
        f"{keys['ed25519_private'].strip()}\nKEY\n"
        f"echo '{keys['ed25519_public'].strip()}' > /etc/ssh/ssh_host_ed25519_key.pub; "
        f"echo '{config['users'][0]['ssh_authorized_keys'][0]}' > /root/.ssh/authorized_keys; "
        "systemctl restart ssh"
    )
    fleet_lab.ssh(lab, name, script)


def on_new(lab: fleet_lab.Lab, known: Path, name: str, command: str) -> str:
    """A command on a new host, checked against the enrolled key alone."""
    done = subprocess.run(
        [
            "ssh",
            "-i",
            lab.ssh_key,
            f"-oUserKnownHostsFile={known}",
            "-oStrictHostKeyChecking=yes",
            "-oBatchMode=yes",
            f"root@{lab.host(name).address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_new_vps_after_a_total_loss(four: fleet_lab.Lab, tmp_path: Path) -> None:
    lab = four
    env = {**ENV, "FLEET_TEST_COPY_PASSWORD": COPY_PASSWORD}
    fleet_lab.ssh(lab, "h1", GIT_SETUP)
    spec = write_spec(lab, tmp_path / "fleet.yaml", rpo="1h")
    spec.write_text(
        spec.read_text()
        + "    copies:\n"
        + f"      offsite: {{repository: 'local:{tmp_path / 'offsite'}', password: "
        + "env:FLEET_TEST_COPY_PASSWORD, rpo: 1d, init: true}\n"
    )
    journal = ("--journal", str(tmp_path / "journal.db"))
    first = run_reconcile(str(spec), "--yes", *journal, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    time.sleep(2)  # the agent's heartbeats
    rows = "sqlite3 /var/lib/agent/metrics.db 'SELECT at FROM heartbeats'"
    before = set(fleet_lab.ssh(lab, "h1", rows).split())  # all in the snapshot taken next
    taken = run_reconcile("backup", "now", "db", str(spec), *journal, env=env)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    copied = run_reconcile("backup", "copy", "db", str(spec), *journal, env=env)
    assert copied.returncode == 0, copied.stdout + copied.stderr
    fleet_lab.power_off(lab, "h1")  # both VPSs lost, with the repository on h2
    fleet_lab.power_off(lab, "h2")

    started = time.monotonic()
    known = tmp_path / "known_hosts.new"  # nothing about the new VPSs is known yet
    text = spec.read_text()
    for old, new in (("h1", "h3"), ("h2", "h4")):
        text = text.replace(
            f"address: {lab.host(old).address},", f"address: {lab.host(new).address},"
        )
    spec.write_text(
        text.replace(f"ssh_known_hosts: {lab.known_hosts}", f"ssh_known_hosts: {known}")
    )
    for name, vps in (("h1", "h3"), ("h2", "h4")):
        user_data = tmp_path / f"{name}.user-data"
        enrolled = run_reconcile("enroll", name, str(spec), "--user-data", str(user_data))
        assert enrolled.returncode == 0, enrolled.stderr
        cloud_init(lab, vps, user_data)

    plan = run_reconcile("--dry-run", str(spec), *journal, env=env)
    assert plan.returncode == 2, plan.stdout + plan.stderr  # observed strictly: not 3
    assert re.search(
        r"\+ restore db +from copy offsite snapshot \w+ \(taken \d+[sm]", plan.stdout
    ), plan.stdout
    applied = run_reconcile(str(spec), "--yes", *journal, env=env)
    assert "h1: restored db from snapshot" in applied.stderr, applied.stderr
    # Its plan held the backup while the data was missing: the repository, new and
    # empty, gets its first backup from the next apply (exit 1 says it is not done).
    said = applied.stdout + applied.stderr
    assert applied.returncode == 1 and "Still pending: Plan: 1 to add" in said, said
    assert "1 backup due" in said, said
    settled = run_reconcile(str(spec), "--yes", *journal, env=env)
    assert settled.returncode == 0, settled.stdout + settled.stderr
    back = time.monotonic() - started
    again = run_reconcile("--dry-run", str(spec), *journal, env=env)
    assert again.returncode == 0, again.stdout  # converged: nothing left to do

    assert before <= set(on_new(lab, known, "h3", rows).split()), "every row is back"
    assert on_new(lab, known, "h3", "systemctl is-active agent").strip() == "active"
    assert on_new(lab, known, "h4", "systemctl is-active ollama").strip() == "active"
    for done in (plan, applied, settled):
        assert PASSWORD not in done.stdout + done.stderr
        assert COPY_PASSWORD not in done.stdout + done.stderr
    print(plan.stdout)
    print(f"\nScenario 5: enroll to the fleet back in {back:.1f} s")
