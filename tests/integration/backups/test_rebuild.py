"""A destroyed host rebuilt: a blank primary restored from its recorded snapshot before
its service starts, and from the copy when the repository host is destroyed too."""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path

from backups.repository import open_copy, open_repository
from state.load import load_fleet
from state.render_backup import sqlite_copy
from tests.fleet import lab as fleet_lab
from tests.integration.backups.conftest import (
    ENV,
    PASSWORD,
    reconcile,
    write_spec,
)
from tests.integration.conftest import run_reconcile


def test_a_blank_primary_is_rebuilt_from_its_recorded_snapshot_before_its_service_starts(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """The seed's "Restore from Backups": h1 is destroyed and a blank h1 boots at the
    same address. Before, the plan said nothing about data and the agent started on an
    empty database. Now the plan says which snapshot it restores, one apply restores and
    verifies it before the agent starts, and no backup of the missing data is taken.
    Last in the module: h1 is rebuilt."""
    spec = write_spec(lab, base / "rebuild.yaml", rpo="1h")
    spec.write_text(spec.read_text().replace("/srv/restic/h1", "/srv/restic/h1-rebuild"))
    state, journal = ("--state", str(spec)), ("--journal", str(base / "rebuild.db"))
    assert reconcile(str(spec), "--yes", *journal).returncode == 0
    time.sleep(2)  # the agent's heartbeats
    taken = reconcile("backup", "now", "db", *state, *journal)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    snapshot = taken.stdout.split()[3]
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
        repository = open_repository(load_fleet(spec).fleet, "db")
        repository.restore(snapshot, Path(scratch))
        copy = Path(scratch) / sqlite_copy("db", "/var/lib/agent/metrics.db").lstrip("/")
        with sqlite3.connect(copy) as db:
            in_snapshot = {row[0] for row in db.execute("SELECT * FROM heartbeats")}
        count_before = len(repository.snapshots(tag="db"))
    assert in_snapshot

    fleet_lab.boot_blank(lab, "h1")
    gone = "test -e /var/lib/agent/metrics.db || test -e /srv/epic-work; echo $?"
    assert fleet_lab.ssh(lab, "h1", gone).strip() == "1"
    plan = reconcile("--dry-run", str(spec), *journal)
    assert re.search(rf"\+ restore db +from snapshot {snapshot} \(taken \d+[sm]", plan.stdout), (
        plan.stdout
    )
    assert "! backup db" not in plan.stdout  # no backup over the missing data
    fresh = reconcile("--dry-run", "--fresh-data", str(spec), *journal)
    assert "every data path missing; --fresh-data: its services start without it" in (
        fresh.stdout
    ), fresh.stdout
    applied = reconcile(str(spec), "--yes", *journal)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"h1: restored db from snapshot {snapshot}" in applied.stderr
    rows = fleet_lab.ssh(lab, "h1", "sqlite3 /var/lib/agent/metrics.db 'SELECT at FROM heartbeats'")
    assert in_snapshot <= set(rows.split()), "every row of the snapshot is back"
    # The restore (the clone of the git bundle) came before the agent's start.
    cloned = int(fleet_lab.ssh(lab, "h1", "stat -c %Y /srv/epic-work/.git/HEAD"))
    started = fleet_lab.ssh(
        lab, "h1", "systemctl show -p ActiveEnterTimestamp --timestamp=unix agent"
    )
    assert cloned <= int(started.strip().split("=@")[1]), (cloned, started)
    assert fleet_lab.ssh(lab, "h1", "git -C /srv/epic-work tag").strip() == "v1"
    assert len(repository.snapshots(tag="db")) == count_before  # no backup of empty data
    # The restored snapshot is this generation's newest: retention (keep_last: 2) keeps
    # it through three new backups, until a newer one has passed a drill.
    for _ in range(3):
        assert reconcile("backup", "now", "db", *state, *journal).returncode == 0
    assert any(s.id.startswith(snapshot) for s in repository.snapshots(tag="db"))
    drill = reconcile("backup", "drill", "db", *state, *journal)
    assert drill.returncode == 0 and "drill passed" in drill.stdout, drill.stdout + drill.stderr
    kept = reconcile("backup", "forget", "db", *state, *journal)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert not any(s.id.startswith(snapshot) for s in repository.snapshots(tag="db"))


COPY_PASSWORD = "test-only-copy-password-41c9"


def test_the_repository_host_is_destroyed_and_a_blank_primary_is_rebuilt_from_the_copy(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """The 3-2-1 rule: `copies:` keeps a second repository, on the controller's disk,
    with its own password that no host holds. The apply fills it with the recorded
    snapshots (`restic copy`). Then h2, the repository host, is destroyed (booted blank:
    its repositories are gone) and so is h1. The plan says it restores from the copy,
    one apply does, and a second apply brings up a new repository and converges."""
    copies = base / "copies" / "db"
    spec = write_spec(lab, base / "copies.yaml", rpo="1h")
    spec.write_text(
        spec.read_text().replace("/srv/restic/h1", "/srv/restic/h1-copied")
        + "    copies:\n"
        + f"      offsite: {{repository: 'local:{copies}', password: "
        + "env:FLEET_TEST_COPY_PASSWORD, rpo: 1d, init: true}\n"
    )
    os.environ["FLEET_TEST_COPY_PASSWORD"] = COPY_PASSWORD
    state, journal = ("--state", str(spec)), ("--journal", str(base / "copies.db"))
    env = {**ENV, "FLEET_TEST_COPY_PASSWORD": COPY_PASSWORD}
    plan = run_reconcile("--dry-run", str(spec), *journal, env=env)
    assert "! copy offsite of backup db" in plan.stdout and "nothing copied yet" in plan.stdout
    first = run_reconcile(str(spec), "--yes", *journal, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "backup db: copy offsite: 1 new, keeps 1" in first.stderr, first.stderr
    time.sleep(2)  # the agent's heartbeats
    taken = run_reconcile("backup", "now", "db", *state, *journal, env=env)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    snapshot = taken.stdout.split()[3]
    filled = run_reconcile("backup", "copy", "db", *state, *journal, env=env)
    assert filled.returncode == 0, filled.stdout + filled.stderr
    assert "backup db: copy offsite: 1 snapshot(s) copied, 2 kept" in filled.stdout, filled.stdout
    listed = run_reconcile("backup", "list", "db", "--copy", "offsite", *state, *journal, env=env)
    assert listed.returncode == 0 and listed.stdout.count("recorded") == 2, listed.stdout
    drill = run_reconcile("backup", "drill", "db", "--copy", "offsite", *state, *journal, env=env)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "backup db copy offsite: drill passed" in drill.stdout, drill.stdout
    # The copy holds the recorded snapshot, under a new ID that names it as its original;
    # no host holds its password.
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    loaded = load_fleet(spec)
    in_copy = open_copy(loaded.fleet, "db", "offsite").snapshots(tag="db")
    assert any((s.original or "").startswith(snapshot) for s in in_copy), in_copy
    copied = next(s for s in in_copy if (s.original or "").startswith(snapshot))
    for host in ("h1", "h2"):
        found = fleet_lab.ssh(
            lab,
            host,
            f"grep -rl {COPY_PASSWORD} /etc /var/lib/fleet-reconciler 2>/dev/null; echo end",
        )
        assert found.strip() == "end", found
    with tempfile.TemporaryDirectory() as scratch:
        repository = open_repository(loaded.fleet, "db")
        repository.restore(snapshot, Path(scratch))
        db_copy = Path(scratch) / sqlite_copy("db", "/var/lib/agent/metrics.db").lstrip("/")
        with sqlite3.connect(db_copy) as db:
            in_snapshot = {row[0] for row in db.execute("SELECT * FROM heartbeats")}
    assert in_snapshot

    fleet_lab.boot_blank(lab, "h2")  # the repository host, and every repository on it
    fleet_lab.boot_blank(lab, "h1")
    plan = run_reconcile("--dry-run", str(spec), *journal, env=env)
    assert re.search(
        rf"\+ restore db +from copy offsite snapshot {copied.short_id} \(taken \d+[sm]",
        plan.stdout,
    ), plan.stdout
    by_hand = run_reconcile(
        "backup", "restore", "db", "--to", "h1:/tmp/from-copy", "--yes", *state, *journal, env=env
    )  # the repository cannot be listed: the newest recorded copy, and the plan says so
    assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
    assert (
        f"restore snapshot {copied.short_id} of backup db from copy offsite (the repository "
        "cannot be listed: its newest recorded copy)" in by_hand.stdout
    ), by_hand.stdout
    assert fleet_lab.ssh(lab, "h1", "cat /tmp/from-copy/etc/agent/agent.conf") == "mode = test\n"
    applied = run_reconcile(str(spec), "--yes", *journal, env=env)
    assert f"h1: restored db from snapshot {copied.short_id} in copy offsite" in applied.stderr, (
        applied.stdout + applied.stderr
    )
    rows = fleet_lab.ssh(lab, "h1", "sqlite3 /var/lib/agent/metrics.db 'SELECT at FROM heartbeats'")
    assert in_snapshot <= set(rows.split()), "every row of the snapshot is back"
    assert fleet_lab.ssh(lab, "h1", "git -C /srv/epic-work tag").strip() == "v1"
    # The new repository is initialised and backed up by the next apply, and copied on.
    again = run_reconcile(str(spec), "--yes", *journal, env=env)
    settled = run_reconcile(str(spec), "--yes", *journal, env=env)
    assert settled.returncode == 0, again.stdout + again.stderr + settled.stdout + settled.stderr
    for done in (plan, applied, again, settled):
        assert COPY_PASSWORD not in done.stdout + done.stderr
        assert PASSWORD not in done.stdout + done.stderr
