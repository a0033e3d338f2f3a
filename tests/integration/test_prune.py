"""What the spec stops naming is removed from the hosts, from their own record: `-` in
the plan, then gone; data files and snapshots are kept."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec, run_reconcile
from tests.spec_text import backup_policy

ENV = {**os.environ, "FLEET_TEST_RESTIC_PASSWORD": "test-only-prune-password"}
EXTRA = """\
  extra:
    host: h1
    unit: {description: extra, exec_start: /bin/sleep infinity}
    config_files:
      - {path: /etc/extra/data.conf, content: "keep me\\n"}
"""
BACKUPS = "backups:\n" + backup_policy(
    "db", "h1", "/srv/restic/h1", "env:FLEET_TEST_RESTIC_PASSWORD", more=("init: true",)
)
GENERATED = (
    "/etc/systemd/system/extra.service /etc/systemd/system/fleet-backup-db.timer "
    "/etc/systemd/system/fleet-backup-db.service /usr/local/lib/fleet-reconciler/backup-db.sh "
    "/etc/fleet-reconciler/backup-db.env"
)


def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
    return run_reconcile(*args, env=ENV)


def existing(lab: fleet_lab.Lab, paths: str) -> set[str]:
    out = fleet_lab.ssh(lab, "h1", f"for p in {paths}; do [ -e $p ] && echo $p; done; true")
    return set(out.split())


def test_removed_service_and_backup_policy_are_planned_as_removals_then_removed(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec, journal = tmp_path / "fleet.yaml", str(tmp_path / "journal.db")
    spec.write_text(lab_spec(lab, BACKUPS).replace("models:\n", EXTRA + "models:\n"))
    done = reconcile(str(spec), "--yes", "--journal", journal)
    assert done.returncode == 0, done.stdout + done.stderr
    assert existing(lab, GENERATED) == set(GENERATED.split())
    record = fleet_lab.ssh(lab, "h1", "cat /var/lib/fleet-reconciler/managed.json")
    assert '"extra"' in record and '"db"' in record

    spec.write_text(lab_spec(lab))  # the extra service and the backup policy are gone
    plan = reconcile("--dry-run", str(spec))
    assert plan.returncode == 2, plan.stdout
    assert "  - service extra" in plan.stdout
    assert "  - backup db" in plan.stdout
    assert "Plan: 0 to add, 0 to change, 2 to remove." in plan.stdout

    done = reconcile(str(spec), "--yes", "--journal", journal)
    assert done.returncode == 0, done.stdout + done.stderr
    assert existing(lab, GENERATED) == set()
    assert fleet_lab.ssh(lab, "h1", "systemctl is-active extra; true").strip() != "active"
    assert fleet_lab.ssh(lab, "h1", "cat /etc/extra/data.conf") == "keep me\n"  # data kept
    assert existing(lab, "/srv/restic/h1/config") == {"/srv/restic/h1/config"}  # snapshots kept
    again = reconcile("--dry-run", str(spec))
    assert again.returncode == 0, again.stdout
