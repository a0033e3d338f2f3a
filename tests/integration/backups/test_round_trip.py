"""A backup's life on real hosts: the plan (files, timer, RPO, never the password),
apply, a byte-identical round trip (a config file, a SQLite database written to during
the backup, a git bundle), an RPO breach planned and healed, central retention, a wrong
password, a killed backup's stale lock, a restore to a host, an unreachable or full
repository and a corrupted pack. The tests run in order on one repository."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from backups.repository import open_repository
from reconciler.store.journal import Journal
from state.layout import backup_path
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.backups.conftest import (
    BACKUPS,
    ENV,
    PASSWORD,
    reconcile,
    restore_latest,
    write_spec,
)
from tests.integration.conftest import lab_spec
from tests.json_schemas import check


def test_plan_shows_backup_files_timer_and_rpo_never_the_password(
    lab: fleet_lab.Lab, base: Path
) -> None:
    spec = write_spec(lab, base / "fleet.yaml")
    done = reconcile("--dry-run", "--output", "json", str(spec))
    assert done.returncode == 2
    plan: dict[str, Any] = json.loads(done.stdout)
    h1 = next(h for h in plan["hosts"] if h["name"] == "h1")
    backup = [a for a in h1["actions"] if a["service"] == "backup:db"]
    assert {a["kind"] for a in backup} == {
        "backup_env",
        "backup_script",
        "backup_unit",
        "backup_timer",
        "backup_known_hosts",
        "repo_init",
        "backup_now",
    }
    pinned = next(a for a in backup if a["kind"] == "backup_known_hosts")
    assert f"+{lab.host('h2').address} ssh-ed25519 " in pinned["diff"]  # h2's key, pinned
    env = next(a for a in backup if a["kind"] == "backup_env")
    assert env["diff"] is None and "content not shown" in env["reason"]
    assert (
        next(a for a in backup if a["kind"] == "backup_now")["reason"] == "no snapshot yet, RPO 1h"
    )
    assert plan["summary"]["backups_due"] == 1


def test_apply_backs_up_and_the_round_trip_is_byte_identical(
    lab: fleet_lab.Lab, base: Path
) -> None:
    spec = base / "fleet.yaml"
    done = reconcile(str(spec), "--yes", "--journal", str(base / "journal.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        fleet_lab.ssh(lab, "h1", "systemctl is-enabled fleet-backup-db.timer").strip() == "enabled"
    )
    assert (
        fleet_lab.ssh(lab, "h1", "stat -c %a /etc/fleet-reconciler/backup-db.env").strip() == "600"
    )
    listing = reconcile("backup", "list", "db", "--state", str(spec))
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == 2
    with tempfile.TemporaryDirectory() as tmp:
        restored = restore_latest(spec, Path(tmp))
        conf = (restored / "etc/agent/agent.conf").read_bytes()
        assert conf == fleet_lab.ssh(lab, "h1", "cat /etc/agent/agent.conf").encode()
        stage = restored / "var/lib/fleet-reconciler/staging/db"
        db = sqlite3.connect(stage / "sqlite/var_lib_agent_metrics.db")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM heartbeats").fetchone()[0] > 0
        clone = Path(tmp) / "clone"
        subprocess.run(
            ["git", "clone", "-q", "--mirror", str(stage / "git/srv_epic-work.bundle"), str(clone)],
            check=True,
        )
        refs = subprocess.run(
            ["git", "-C", str(clone), "show-ref"], capture_output=True, text=True, check=True
        ).stdout
        assert refs.split() == fleet_lab.ssh(lab, "h1", "git -C /srv/epic-work show-ref").split()


def test_root_on_the_backed_up_host_cannot_reach_past_its_own_repository(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """As root on h1, with everything h1 holds (its key, its password): no shell on the
    repository host h2, no sftp, no deletion. Before, every host held one fleet-wide key
    that h2 authorized for root without restriction (`uid=0` on h2)."""
    h2 = lab.host("h2").address
    key, pinned = backup_path("db", "key"), backup_path("db", "known_hosts")
    env = backup_path("db", "env")
    ssh = f"ssh -i {key} -o BatchMode=yes -o UserKnownHostsFile={pinned} -- root@{h2}"
    assert fleet_lab.ssh(lab, "h1", "test -e /etc/fleet-reconciler/backup_ed25519; echo $?") \
        .strip() == "1"  # fmt: skip
    # What answers is rclone's HTTP/2 greeting, binary: shown with cat -v.
    shell = fleet_lab.ssh(lab, "h1", f"{ssh} id </dev/null 2>&1 | cat -v", check=False)
    assert "uid=" not in shell, shell
    as_root = f"set -a; . {env}; set +a; "
    sftp = fleet_lab.ssh(
        lab,
        "h1",
        as_root + f"restic -r sftp:root@{h2}:/srv/restic/h1 "
        f"-o sftp.command='{ssh} -s sftp' snapshots 2>&1; echo exit=$?",
        check=False,
    )
    assert "exit=0" not in sftp, sftp
    spec = base / "fleet.yaml"
    fleet_lab.ssh(lab, "h1", "systemctl start fleet-backup-db.service")  # through its key
    before = reconcile("backup", "list", "db", "--state", str(spec)).stdout
    assert len(before.splitlines()) == 3  # two snapshots: a forget has one to delete
    program = f"-o rclone.program='{ssh}'"
    listed = fleet_lab.ssh(lab, "h1", as_root + f"restic {program} snapshots --json")
    assert len(json.loads(listed)) == len(before.splitlines()) - 1  # its own repository, read
    # restic retries a refused deletion for about a minute before it gives up
    forget = f"restic {program} forget --keep-last 1 --prune 2>&1; echo exit=$?"
    done = fleet_lab.ssh(lab, "h1", as_root + forget, check=False)
    assert "exit=0" not in done and "unable to remove <snapshot/" in done, done[-2000:]
    assert "blob not removed, server response: 403 Forbidden" in done
    after = reconcile("backup", "list", "db", "--state", str(spec)).stdout

    def ids(listing: str) -> list[str]:
        return [line.split()[1] for line in listing.splitlines()[1:]]

    assert ids(after) == ids(before)
    entries = fleet_lab.ssh(lab, "h2", "grep -v '^#' /root/.ssh/authorized_keys")
    ours = [line for line in entries.splitlines() if "fleet-reconciler-backup" in line]
    assert ours == [line for line in ours if line.startswith('restrict,command="rclone serve')]
    assert ours and all("--append-only /srv/restic/h1" in line for line in ours)


def test_sqlite_written_to_during_the_backup_restores_whole(lab: fleet_lab.Lab, base: Path) -> None:
    writer = (
        "nohup python3 -c \"import sqlite3,time\ndb=sqlite3.connect('/var/lib/agent/metrics.db', timeout=30)\n"
        "end=time.time()+8\nwhile time.time()<end:\n with db: db.execute('INSERT INTO heartbeats VALUES (?, ?)', (str(time.time()), 'load'))\n\" "
        ">/dev/null 2>&1 &"
    )
    fleet_lab.ssh(lab, "h1", writer)
    time.sleep(1)
    committed = int(
        fleet_lab.ssh(
            lab, "h1", "sqlite3 /var/lib/agent/metrics.db 'SELECT COUNT(*) FROM heartbeats'"
        )
    )
    done = reconcile(
        "backup",
        "now",
        "db",
        "--state",
        str(base / "fleet.yaml"),
        "--journal",
        str(base / "journal.db"),
    )
    assert done.returncode == 0, done.stderr
    with tempfile.TemporaryDirectory() as tmp:
        restored = restore_latest(base / "fleet.yaml", Path(tmp))
        db = sqlite3.connect(
            restored / "var/lib/fleet-reconciler/staging/db/sqlite/var_lib_agent_metrics.db"
        )
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM heartbeats").fetchone()[0] >= committed


def test_rpo_breach_is_planned_and_the_next_apply_backs_up(lab: fleet_lab.Lab, base: Path) -> None:
    spec = write_spec(lab, base / "rpo.yaml", rpo="10s")
    time.sleep(11)
    done = reconcile("--dry-run", str(spec))
    assert done.returncode == 2
    line = next(line for line in done.stdout.splitlines() if "! backup db" in line)
    assert "ago, RPO 10s" in line and "last snapshot" in line
    applied = reconcile(str(spec), "--yes", "--journal", str(base / "journal.db"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "h1: running backup now db" in applied.stderr


def test_retention_keeps_exactly_what_the_policy_says(lab: fleet_lab.Lab, base: Path) -> None:
    spec = base / "fleet.yaml"
    made = []
    for _ in range(3):
        done = reconcile(
            "backup", "now", "db", "--state", str(spec), "--journal", str(base / "journal.db")
        )
        assert done.returncode == 0, done.stderr
        made.append(re.search(r"snapshot (\w{8}) at", done.stdout)[1])  # type: ignore[index]
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    repository = open_repository(load_fleet(spec).fleet, "db")
    listing = repository._run(["snapshots", "--tag", "db"])  # restic's own snapshots --json
    kept = [s["short_id"] for s in sorted(json.loads(listing), key=lambda s: s["time"])]
    assert kept == made[-2:]  # keep_last: 2, the two newest


def test_wrong_password_is_a_clear_error_and_rpo_drift(lab: fleet_lab.Lab, base: Path) -> None:
    os.environ["FLEET_TEST_WRONG_PASSWORD"] = "not-the-password"
    ENV["FLEET_TEST_WRONG_PASSWORD"] = "not-the-password"
    spec = write_spec(lab, base / "wrong.yaml", password="env:FLEET_TEST_WRONG_PASSWORD")
    plan = reconcile("--dry-run", str(spec))
    assert plan.returncode == 2
    assert (
        "RPO at risk, repository unreadable: restic snapshots failed (exit 1): Fatal: wrong password"
        in plan.stdout
    )
    listing = reconcile("backup", "list", "db", "--state", str(spec))
    assert listing.returncode == 1
    assert (
        "error: backup db: restic snapshots failed (exit 1): Fatal: wrong password or no key found"
        in listing.stderr
    )


def test_drill_restores_verifies_and_is_recorded(base: Path) -> None:
    journal = base / "journal.db"
    done = reconcile(
        "backup", "drill", "db", "--state", str(base / "fleet.yaml"), "--journal", str(journal)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.match(
        r"backup db: drill passed: restored snapshot \w{8} \(\d+ files\) in [\d.]+s, RTO 30s",
        done.stdout,
    )
    events = Journal(journal).events(10, "drill_passed")
    assert events and events[0].context["problems"] == []
    as_json = reconcile(
        "backup", "drill", "db", str(base / "fleet.yaml"), "--journal", str(journal), "-o", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    check("backup-drill", document)  # against reconciler/cli/schemas
    assert document["ok"] and document["files"] > 0 and document["problems"] == []
    listed = reconcile(
        "backup", "list", str(base / "fleet.yaml"), "--journal", str(journal), "-o", "json"
    )
    assert listed.returncode == 0, listed.stderr
    check("backup-list", json.loads(listed.stdout))


def test_killed_backup_leaves_a_stale_lock_that_the_next_run_clears(
    lab: fleet_lab.Lab, base: Path
) -> None:
    spec = base / "fleet.yaml"
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    repository = open_repository(load_fleet(spec).fleet, "db")
    fleet_lab.ssh(lab, "h1", "head -c 300000000 /dev/urandom > /etc/agent/big.bin")
    try:
        fleet_lab.ssh(lab, "h1", "systemctl start --no-block fleet-backup-db.service")
        deadline = time.monotonic() + 60
        while not repository._run(["list", "locks"]).strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        fleet_lab.ssh(lab, "h1", "pkill -9 -x restic")
        time.sleep(1)
        assert repository._run(["list", "locks"]).strip(), "the killed backup left no lock"
    finally:
        fleet_lab.ssh(lab, "h1", "rm -f /etc/agent/big.bin")
    done = reconcile(
        "backup", "now", "db", "--state", str(spec), "--journal", str(base / "journal.db")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert repository._run(["list", "locks"]).strip() == ""


def test_restore_to_a_host_shows_a_plan_asks_and_copies(lab: fleet_lab.Lab, base: Path) -> None:
    spec = str(base / "fleet.yaml")
    journal = ("--journal", str(base / "journal.db"))  # the ledger of what was recorded
    elsewhere = reconcile("backup", "restore", "db", "--to", "h2:/tmp/restored", "--state", spec)
    assert elsewhere.returncode == 1  # a journal that recorded nothing restores nothing
    assert "error: backup db: no recorded snapshot to restore" in elsewhere.stderr
    refused = reconcile(
        "backup", "restore", "db", "--to", "h2:/tmp/restored", "--state", spec, *journal
    )
    assert refused.returncode == 64  # a usage error: no terminal, no --yes
    assert "Restore plan:\n  ~ restore snapshot" in refused.stdout
    assert "refusing to apply without confirmation: no terminal; pass --yes" in refused.stderr
    done = reconcile(
        "backup", "restore", "db", "--to", "h2:/tmp/restored", "--state", spec, "--yes", *journal
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"Restored \d+ files of snapshot \w{8} into h2:/tmp/restored", done.stdout)
    restored = fleet_lab.ssh(lab, "h2", "cat /tmp/restored/etc/agent/agent.conf")
    assert restored == fleet_lab.ssh(lab, "h1", "cat /etc/agent/agent.conf")


def test_unreachable_repository_is_rpo_drift_not_a_crash(lab: fleet_lab.Lab, base: Path) -> None:
    fleet_lab.cut_link(lab, "h2")
    try:
        done = reconcile("--dry-run", str(base / "fleet.yaml"))
    finally:
        fleet_lab.restore_link(lab, "h2")
    assert done.returncode == 3  # h2, a host of the fleet too, could not be observed
    assert re.search(
        r"! backup db +RPO at risk, repository unreadable: restic snapshots failed", done.stdout
    ), done.stdout


def test_full_disk_on_the_repository_is_a_clear_error(lab: fleet_lab.Lab, base: Path) -> None:
    fleet_lab.ssh(
        lab, "h2", "mkdir -p /srv/restic/small && mount -t tmpfs -o size=6m tmpfs /srv/restic/small"
    )
    fleet_lab.ssh(
        lab, "h1", "mkdir -p /srv/bigdata && head -c 20000000 /dev/urandom > /srv/bigdata/blob"
    )
    small = BACKUPS.replace("  db:", "  small:").replace(
        "sqlite: [/var/lib/agent/metrics.db]", "paths: [/srv/bigdata]"
    )
    small = small.replace("    git: [/srv/epic-work]\n    paths: [/etc/agent]\n", "").replace(
        "/srv/restic/h1", "/srv/restic/small"
    )
    spec = base / "small.yaml"
    spec.write_text(lab_spec(lab, small.replace("RPO", "1h")))
    try:
        done = reconcile(
            "backup", "now", "small", "--state", str(spec), "--journal", str(base / "journal.db")
        )
    finally:
        fleet_lab.ssh(lab, "h2", "umount /srv/restic/small")
    assert done.returncode == 1
    # restic's own words depend on which write meets the full disk first ("unable to save
    # snapshot: ... 403", "no space left on device", an sftp failure): only that it failed.
    assert "Fatal:" in done.stderr or "no space left" in done.stderr, done.stderr[-2000:]
    assert re.search(
        r"the repository disk on h2 has [\d.]+ MiB free of 6.0 MiB at /srv/restic/small",
        done.stderr,
    ), done.stderr[-2000:]
    assert "error: backup small on h1: Backup now | backup small: run now:" in done.stderr, (
        done.stderr[-2000:]
    )


def test_corrupted_pack_is_found_by_check_and_escalated(lab: fleet_lab.Lab, base: Path) -> None:
    journal = base / "journal.db"
    fleet_lab.ssh(
        lab,
        "h2",
        # Every pack: a killed backup leaves unindexed packs, which `check` only notes.
        "for f in $(find /srv/restic/h1/data -type f); do "
        "printf 'corrupted by the test' | dd of=$f bs=1 seek=200 conv=notrunc 2>/dev/null; done",
    )
    done = reconcile(
        "backup",
        "check",
        "db",
        "--subset",
        "1/1",
        "--state",
        str(base / "fleet.yaml"),
        "--journal",
        str(journal),
    )
    assert done.returncode == 1
    assert "backup db: repository check FAILED: restic check failed" in done.stdout
    state, journal_args = ("--state", str(base / "fleet.yaml")), ("--journal", str(journal))
    as_json = reconcile(
        "backup", "check", "db", "--subset", "1/1", *state, *journal_args, "-o", "json"
    )
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    check("backup-check", document)
    assert not document["ok"] and "restic check failed" in document["error"]
    failures = Journal(journal).events(20, "backup_check_failed", service="backup:db")
    assert failures and failures[0].severity == "P1"
