"""Backups on real hosts: h1 backs up to a restic repository on h2 over sftp.

The shared spec (a SQLite database written to during the backup, a git repository and
a config directory, retention keep_last 2), its password and the helpers of the files
here. Each file boots its own lab, so the files run on parallel workers.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from backups.repository import open_repository
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec, run_reconcile

PASSWORD = "test-only-restic-password-7f3a"
ENV = {**os.environ, "FLEET_TEST_RESTIC_PASSWORD": PASSWORD}
BACKUPS = """\
backups:
  db:
    host: h1
    sqlite: [/var/lib/agent/metrics.db]
    git: [/srv/epic-work]
    paths: [/etc/agent]
    schedule: hourly
    retention: {keep_last: 2}
    rpo: RPO
    repository: sftp:root@h2:/srv/restic/h1
    password: env:FLEET_TEST_RESTIC_PASSWORD
    init: true
"""
GIT_SETUP = (
    "set -e; mkdir -p /srv/epic-work && cd /srv/epic-work && git init -q && "
    "git config user.email t@t && git config user.name t && "
    "echo one > a && git add a && git commit -qm one && git tag v1 && "
    "git checkout -qb feature && echo two > b && git add b && git commit -qm two"
)


def write_spec(
    lab: fleet_lab.Lab,
    path: Path,
    rpo: str = "1h",
    password: str = "env:FLEET_TEST_RESTIC_PASSWORD",
) -> Path:
    text = lab_spec(
        lab, BACKUPS.replace("RPO", rpo).replace("env:FLEET_TEST_RESTIC_PASSWORD", password)
    )
    path.write_text(
        text.replace("--interval 1", "--interval 1 --metrics-db /var/lib/agent/metrics.db")
    )
    return path


def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
    done = run_reconcile(*args, env=ENV)
    assert PASSWORD not in done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def base(lab: fleet_lab.Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    fleet_lab.ssh(lab, "h1", GIT_SETUP)
    return tmp_path_factory.mktemp("backups")


def restore_latest(spec: Path, into: Path) -> Path:
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    loaded = load_fleet(spec)
    repository = open_repository(loaded.fleet, "db")
    latest = repository.snapshots(tag="db", host="h1")[-1]
    repository.restore(latest.id, into)
    return into
