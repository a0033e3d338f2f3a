"""Hostile input against real hosts: what the spec accepts runs nothing it should not,
what it refuses touches nothing, and a host whose key is unknown or changed is refused.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec, run_reconcile

PASSWORD = "test-only-hostile-password-51c2"
ENV = {**os.environ, "FLEET_TEST_RESTIC_PASSWORD": PASSWORD}
MARKERS = "ls /tmp/pwned* 2>/dev/null; true"
# Values the spec accepts (one line each) that a shell, systemd or sqlite would run if
# they were pasted unquoted: each would leave a marker file /tmp/pwned-N on the host.
DESCRIPTION = "agent $(touch /tmp/pwned-1) `touch /tmp/pwned-2`; touch /tmp/pwned-3 %n"
NOTE = '$(touch /tmp/pwned-4)" ; ExecStartPre=/bin/touch /tmp/pwned-5 \\'
EXCLUDES = ["$(touch /tmp/pwned-6)", "`touch /tmp/pwned-7`", "x; touch /tmp/pwned-8", "'\""]
BACKUPS = f"""\
backups:
  db:
    host: h1
    paths: [/etc/agent]
    excludes: {json.dumps(EXCLUDES)}
    schedule: hourly
    retention: {{keep_last: 2}}
    rpo: 1h
    repository: /srv/restic/h1
    password: env:FLEET_TEST_RESTIC_PASSWORD
    init: true
"""


def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
    done = run_reconcile(*args, env=ENV)
    assert PASSWORD not in done.stdout + done.stderr
    return done


def hostile_spec(lab: fleet_lab.Lab, extra: str = BACKUPS) -> str:
    text = lab_spec(lab, extra)
    text = text.replace("description: test agent", f"description: {json.dumps(DESCRIPTION)}")
    text = text.replace(
        "      restart: always\n",
        f"      restart: always\n      environment: {{NOTE: {json.dumps(NOTE)}}}\n",
        1,
    )
    return text.replace('content: "mode = test\\n"', 'content: "$(touch /tmp/pwned-9)\\n"')


def test_accepted_hostile_values_run_nothing_on_the_hosts(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(hostile_spec(lab))
    done = reconcile(str(spec), "--yes", "--journal", str(tmp_path / "journal.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backup db" in done.stderr  # the backup script ran, with the hostile excludes
    for host in ("h1", "h2"):
        assert fleet_lab.ssh(lab, host, MARKERS) == "", f"something ran on {host}"
    shown = fleet_lab.ssh(lab, "h1", "systemctl show -p Description -p Environment agent")
    assert f"Description={DESCRIPTION}\n" in shown  # systemd read exactly what was written
    environment = next(ln for ln in shown.splitlines() if ln.startswith("Environment="))
    # systemctl prints it shell-quoted, with `$` escaped as `\$`.
    [value] = shlex.split(environment.removeprefix("Environment="))
    assert value.replace("\\$", "$") == f"NOTE={NOTE}"
    directives = fleet_lab.ssh(lab, "h1", "grep -c '^ExecStart' /etc/systemd/system/agent.service")
    assert directives.strip() == "1"  # no ExecStartPre= smuggled in
    snapshot = fleet_lab.ssh(lab, "h1", "ls /srv/restic/h1/snapshots | wc -l")
    assert int(snapshot) >= 1


def test_a_refused_state_file_changes_nothing_on_the_hosts(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    before = fleet_lab.ssh(lab, "h1", "ls -l --time-style=+%s /etc/systemd/system/ | md5sum")
    spec = tmp_path / "fleet.yaml"
    spec.write_text(
        lab_spec(lab).replace(
            "description: test agent",
            'description: "agent\\nExecStartPre=/bin/touch /tmp/pwned-10"',
        )
    )
    done = reconcile(str(spec), "--yes", "--journal", str(tmp_path / "journal.db"))
    assert done.returncode == 1
    assert f"error: {spec}:" in done.stderr
    assert "services.agent.unit.description: expected one line of text" in done.stderr
    assert fleet_lab.ssh(lab, "h1", MARKERS) == ""
    after = fleet_lab.ssh(lab, "h1", "ls -l --time-style=+%s /etc/systemd/system/ | md5sum")
    assert before == after


def test_config_file_with_a_missing_owner_fails_the_host_before_writing(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(
        lab_spec(lab).replace(
            'mode: "0640"}',
            'mode: "0600"}\n      - {path: /etc/agent/secret.conf, content: "token = s3cr3t\\n", '
            'mode: "0600", owner: nosuchuser}',
        )
    )
    done = reconcile(str(spec), "--yes", "--journal", str(tmp_path / "journal.db"))
    assert done.returncode == 1
    assert "user 'nosuchuser' does not exist on host h1; nothing was written" in done.stdout
    assert "host h1: FAILED" in done.stdout
    assert fleet_lab.ssh(lab, "h1", "ls /etc/agent/secret.conf 2>&1; true").startswith("ls:")


def test_the_password_is_never_readable_by_another_user_on_first_deploy(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    fleet_lab.ssh(lab, "h2", "rm -rf /etc/fleet-reconciler /tmp/leak")
    reader = (
        "nohup sh -c 'for i in $(seq 1 4000); do "
        "runuser -u nobody -- cat /etc/fleet-reconciler/backup-db2.env >> /tmp/leak 2>/dev/null;"
        " done' >/dev/null 2>&1 &"
    )
    fleet_lab.ssh(lab, "h2", reader)
    policy = BACKUPS.replace("  db:\n    host: h1", "  db2:\n    host: h2").replace(
        "/srv/restic/h1", "/srv/restic/h2"
    )
    spec = tmp_path / "fleet.yaml"
    spec.write_text(
        lab_spec(lab, policy.replace("paths: [/etc/agent]", "paths: [/etc/os-release]"))
    )
    done = reconcile(str(spec), "--yes", "--target", "h2", "--journal", str(tmp_path / "j.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    fleet_lab.ssh(lab, "h2", "pkill -f 'fo[r] i in'; true")
    modes = fleet_lab.ssh(
        lab, "h2", "stat -c '%a %U' /etc/fleet-reconciler /etc/fleet-reconciler/backup-db2.env"
    )
    assert modes.split("\n")[:2] == ["700 root", "600 root"]
    assert PASSWORD not in fleet_lab.ssh(lab, "h2", "cat /tmp/leak 2>/dev/null; true")


def test_an_unknown_host_key_is_refused_unless_the_spec_trusts_on_first_use(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    spec = tmp_path / "fleet.yaml"
    spec.write_text(lab_spec(lab).replace(lab.known_hosts, str(empty)))
    done = reconcile("--dry-run", str(spec))
    assert done.returncode == 3  # a host not observed: the plan is partial
    address = lab.host("h1").address
    assert f"host key of {address} is not in {empty}, so the host is refused" in done.stdout
    assert f"ssh-keyscan {address} >> {empty}" in done.stdout
    assert empty.read_text() == ""  # nothing was trusted
    trusting = lab_spec(lab).replace(
        f"ssh_known_hosts: {lab.known_hosts}",
        f"ssh_known_hosts: {empty}, host_key_policy: trust-on-first-use",
    )
    spec.write_text(trusting)
    done = reconcile("--dry-run", str(spec))
    assert done.returncode in (0, 2) and "is not in" not in done.stdout, done.stdout
    assert address in empty.read_text()


@pytest.fixture
def changed_host_key(lab: fleet_lab.Lab) -> Iterator[None]:
    """h2 gets a new host key (as a reinstalled host or an impostor would); restored after."""
    fleet_lab.ssh(
        lab,
        "h2",
        "mkdir -p /root/keys && cp -a /etc/ssh/ssh_host_* /root/keys/ && rm /etc/ssh/ssh_host_* "
        "&& ssh-keygen -A >/dev/null && systemctl restart ssh",
    )
    yield
    subprocess.run(
        [
            "ssh",
            "-i",
            lab.ssh_key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            f"root@{lab.host('h2').address}",
            "cp -a /root/keys/ssh_host_* /etc/ssh/ && systemctl restart ssh",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


def test_a_changed_host_key_is_refused_by_every_command(
    lab: fleet_lab.Lab, tmp_path: Path, changed_host_key: None
) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(lab_spec(lab))
    address = lab.host("h2").address
    line = f"host key of {address} has CHANGED since it was recorded in {lab.known_hosts}"
    plan = reconcile("--dry-run", str(spec))
    assert plan.returncode == 3 and line in plan.stdout, plan.stdout
    apply = reconcile(str(spec), "--yes", "--journal", str(tmp_path / "journal.db"))
    assert apply.returncode == 1 and line in apply.stdout
    status = reconcile("status", str(spec), "--journal", str(tmp_path / "journal.db"))
    assert "h2" in status.stdout and "unreachable" in status.stdout
    assert status.returncode == 3, status.stderr
