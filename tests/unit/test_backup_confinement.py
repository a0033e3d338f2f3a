"""Each policy's key opens its own repository, append-only, and nothing else."""

from __future__ import annotations

import shlex
from pathlib import Path

from backups.restic_repo import sftp_command
from deploys.backup import repository_entries
from reconciler.repositories.fleet_key import ensure_policy_key
from state.render_backup import CONFINED_URL, render_env, render_script
from state.repository import resolve_repository
from tests.spec_text import backup_policy
from tests.unit.helpers import load_text

SPEC = (
    """\
version: 1
hosts:
  kimi: {address: 198.18.0.11}
  hermes: {address: 198.18.0.12}
services: {}
backups:
"""
    + backup_policy(
        "db",
        "kimi",
        "sftp:root@hermes:/srv/restic/kimi",
        "env:RESTIC_PASSWORD",
        retention="{keep_last: 3}",
    )
    + backup_policy(
        "local",
        "hermes",
        "/srv/restic/own",
        "env:RESTIC_PASSWORD",
        paths="[/etc/gitea]",
        schedule="daily",
        retention="{keep_last: 3}",
        rpo="1d",
    )
)


def test_the_host_reaches_its_repository_only_through_its_own_confined_key() -> None:
    fleet = load_text(SPEC).fleet
    policy = fleet.backups["db"]
    target = resolve_repository(fleet, policy)
    assert render_env(policy, target, "pw").startswith(f"RESTIC_REPOSITORY={CONFINED_URL}\n")
    script = render_script("db", policy, target)
    backup = next(line for line in script.splitlines() if line.startswith("if restic backup"))
    words = shlex.split(backup.removeprefix("if ").split(" >")[0])
    program = next(w for w in words if w.startswith("rclone.program="))
    assert program.split() == [
        "rclone.program=ssh",
        "-i",
        "/etc/fleet-reconciler/backup-db.key",
        "-o",
        "BatchMode=yes",
        "-o",
        "KexAlgorithms=-sntrup*",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UserKnownHostsFile=/etc/fleet-reconciler/backup-db.known_hosts",
        "--",
        "root@198.18.0.12",
    ]
    assert "backup_ed25519" not in script and "sftp" not in script
    assert "," not in program  # restic splits an --option value on commas


def test_the_controllers_sftp_command_has_no_comma_restic_would_split_on() -> None:
    command = sftp_command(load_text(SPEC).fleet.hosts["hermes"])
    assert "KexAlgorithms=-sntrup*" in command and "," not in command


def test_a_repository_host_authorizes_each_policy_once_confined_to_its_path(
    tmp_path: Path,
) -> None:
    fleet = load_text(SPEC).fleet
    pair = ensure_policy_key(tmp_path, "db")
    assert ensure_policy_key(tmp_path, "db") == pair  # generated once
    (entry,) = repository_entries(fleet, "hermes", {"db": pair.public})
    kind, key = pair.public.split()[:2]
    assert entry == (
        'restrict,command="rclone serve restic --stdio --config=/dev/null --append-only '
        f'/srv/restic/kimi" {kind} {key} fleet-reconciler-backup-db'
    )
    assert repository_entries(fleet, "kimi", {"db": pair.public}) == []
    local = resolve_repository(fleet, fleet.backups["local"])
    assert render_env(fleet.backups["local"], local, "pw").startswith(
        "RESTIC_REPOSITORY=/srv/restic/own\n"
    )
