"""Backups on real hosts: h1 backs up to a restic repository on h2 over sftp.

Covers the plan (files, timer, RPO, never the password), apply, a byte-identical round
trip (config file, a SQLite database written to during the backup, a git bundle), an
RPO breach planned and healed, central retention, and a wrong password.
"""

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

import pytest

from backups.repository import open_copy, open_repository
from backups.restic_repo import WrongPassword
from reconciler.store.journal import Journal
from state.layout import backup_path
from state.load import load_fleet
from state.render_backup import sqlite_copy
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
    assert refused.returncode == 1
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
    assert done.returncode == 2
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
    assert "Fatal: unable to save snapshot: server response unexpected: 403" in done.stderr
    assert re.search(
        r"the repository disk on h2 has [\d.]+ MiB free of 6.0 MiB at /srv/restic/small",
        done.stderr,
    )
    assert "error: backup small on h1: Backup now | backup small: run now:" in done.stderr


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
    failures = Journal(journal).events(20, "backup_check_failed", service="backup:db")
    assert failures and failures[0].severity == "P1"


def test_a_plan_lists_the_repository_only_for_a_snapshot_it_has_not_confirmed(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """The backup script leaves the new snapshot's ID on the host; once the repository
    confirmed that ID, plans read it from the host snapshot instead of listing again."""
    import httpx

    from reconciler.run.once import plan_once
    from reconciler.store.confirmations import Confirmations

    spec = write_spec(lab, base / "confirm.yaml", rpo="1h")
    spec.write_text(spec.read_text().replace("/srv/restic/h1", "/srv/restic/h1-confirm"))
    journal_path = base / "confirm.db"
    done = reconcile(str(spec), "--yes", "--journal", str(journal_path))
    assert done.returncode == 0, done.stdout + done.stderr
    last = fleet_lab.ssh(lab, "h1", "cat /var/lib/fleet-reconciler/backup-db.last").split()
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    loaded = load_fleet(spec)
    confirmations = Confirmations(Journal(journal_path))
    with httpx.Client(trust_env=False) as client:
        first = plan_once(loaded, client, confirmations=confirmations).observed.backups["db"]
        again = plan_once(loaded, client, confirmations=confirmations).observed.backups["db"]
        assert first.newest_id is not None and first.newest_id.startswith(last[0])
        assert (again.listed, again.newest_id, again.last_snapshot) == (
            False,
            first.newest_id,
            first.last_snapshot,
        )
        assert (
            reconcile(
                "backup", "now", "db", "--state", str(spec), "--journal", str(journal_path)
            ).returncode
            == 0
        )
        newer = plan_once(loaded, client, confirmations=confirmations).observed.backups["db"]
    assert newer.listed and newer.newest_id != first.newest_id  # a new ID: asked again


def test_a_forged_snapshot_is_never_restored_and_raises_its_p1(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """As root on h1, with its key, its password and its own backup script: plant a
    snapshot tagged `epoch-999` and one claiming to be h2's, each reported in h1's
    `.last`, with a poisoned row and a setuid-root file. Before, a restore took the
    highest epoch; now only the snapshot the controller recorded is restored or drilled,
    each forgery raises one P1 `backup_forged`, and a restore carries no setuid bit and
    no link."""
    spec = write_spec(lab, base / "provenance.yaml", rpo="1h")
    spec.write_text(spec.read_text().replace("/srv/restic/h1", "/srv/restic/h1-provenance"))
    journal_path = base / "provenance.db"
    state, journal = ("--state", str(spec)), ("--journal", str(journal_path))
    fleet_lab.ssh(lab, "h1", "mkdir -p /etc/agent && echo genuine > /etc/agent/marker")
    assert reconcile(str(spec), "--yes", *journal).returncode == 0
    good = reconcile("backup", "now", "db", *state, *journal)
    assert good.returncode == 0, good.stdout + good.stderr
    genuine = good.stdout.split()[3]  # "backup db: snapshot ID at ..."
    script, env = backup_path("db", "script"), backup_path("db", "env")
    plant = (
        "echo poisoned > /etc/agent/marker && cp /bin/true /etc/agent/rootshell && "
        "chmod 4755 /etc/agent/rootshell && ln -sfn /etc/shadow /etc/agent/shadow-link"
    )
    fleet_lab.ssh(lab, "h1", plant)
    for forgery in ("s/epoch-\\$epoch/epoch-999/", "s/--host h1/--host h2/"):
        fleet_lab.ssh(
            lab,
            "h1",
            f"sed '{forgery}' {script} > /tmp/forge.sh && set -a && . {env} && set +a && "
            "sh /tmp/forge.sh",
        )
    applied = reconcile(str(spec), "--yes", *journal)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    forged = Journal(journal_path).events(20, "backup_forged")
    assert len(forged) == 2 and all(e.severity == "P1" for e in forged), forged
    reasons = " | ".join(e.message for e in forged)
    assert "tagged epoch-999, above the fleet's epoch 0" in reasons, reasons
    assert "claims host 'h2', which never held this policy" in reasons, reasons
    listing = reconcile("backup", "list", "db", *state, *journal).stdout
    assert listing.count(" forged") == 2 and f"{genuine} " in listing, listing
    drill = reconcile("backup", "drill", "db", *state, *journal)
    assert f"restored snapshot {genuine}" in drill.stdout, drill.stdout + drill.stderr
    restore = reconcile(
        "backup", "restore", "db", "--to", "h2:/tmp/prov", *state, *journal, "--yes"
    )
    assert f"of snapshot {genuine} into h2:/tmp/prov" in restore.stdout, restore.stderr
    assert fleet_lab.ssh(lab, "h2", "cat /tmp/prov/etc/agent/marker").strip() == "genuine"
    # The host's own next backup is genuine (recorded) but carries the planted files:
    # what is restored has no setuid bit and no link.
    fleet_lab.ssh(lab, "h1", "systemctl start fleet-backup-db.service")
    assert reconcile(str(spec), "--yes", *journal).returncode == 0
    restore = reconcile(
        "backup", "restore", "db", "--to", "h2:/tmp/prov2", *state, *journal, "--yes"
    )
    assert restore.returncode == 0, restore.stderr
    assert "etc/agent/shadow-link is a symlink: left out" in restore.stderr
    assert "etc/agent/rootshell: setuid/setgid bit cleared" in restore.stderr
    mode = fleet_lab.ssh(lab, "h2", "stat -c %a /tmp/prov2/etc/agent/rootshell").strip()
    assert mode == "755"
    gone = fleet_lab.ssh(lab, "h2", "test -e /tmp/prov2/etc/agent/shadow-link; echo $?")
    assert gone.strip() == "1"
    fleet_lab.ssh(lab, "h1", "rm -f /etc/agent/rootshell /etc/agent/shadow-link /etc/agent/marker")


def test_rotate_key_revokes_the_old_key_and_keeps_every_snapshot(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """After a suspected compromise of h1: the key h1 held no longer opens anything on h2
    (it did, for rclone's forced command), the new one backs up, and every snapshot is
    still listed. Uses the provenance test's spec and repository."""
    spec = base / "provenance.yaml"
    state, journal = ("--state", str(spec)), ("--journal", str(base / "provenance.db"))
    old_key = (base / "backup-db_ed25519").read_text()
    stolen = base / "stolen.key"
    stolen.write_text(old_key)
    stolen.chmod(0o600)
    h2 = lab.host("h2").address

    def with_stolen_key() -> tuple[int, str]:
        """(exit code, stderr); what answers an accepted key is rclone's binary greeting."""
        only = ["-oIdentitiesOnly=yes", "-i", str(stolen)]  # not the lab's root key
        done = subprocess.run(
            ["ssh", *fleet_lab.ssh_options(lab)[2:], *only, f"root@{h2}", "true"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        return done.returncode, done.stderr.decode(errors="replace")

    assert with_stolen_key()[0] != 255  # accepted: rclone's forced command ran
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    repository = open_repository(load_fleet(spec).fleet, "db")
    before = {s.id for s in repository.snapshots(tag="db")}
    asked = reconcile("backup", "rotate-key", "db", *state, *journal)
    assert asked.returncode == 1 and "Rotate plan:" in asked.stdout  # no terminal, no --yes
    assert (base / "backup-db_ed25519").read_text() == old_key  # nothing changed
    done = reconcile("backup", "rotate-key", "db", *state, *journal, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"key rotated: SHA256:\S+ deployed to h1; SHA256:\S+ revoked", done.stdout)
    code, said = with_stolen_key()
    assert code == 255 and "Permission denied" in said, said
    held = fleet_lab.ssh(lab, "h1", f"cat {backup_path('db', 'key')}")
    assert held.strip() == (base / "backup-db_ed25519").read_text().strip() != old_key.strip()
    assert {s.id for s in repository.snapshots(tag="db")} == before  # every snapshot kept
    again = reconcile("backup", "now", "db", *state, *journal)  # through the new key
    assert again.returncode == 0, again.stdout + again.stderr
    new = again.stdout.split()[3]
    assert any(s.id.startswith(new) for s in repository.snapshots(tag="db"))


NEW_PASSWORD = "test-only-rotated-password-9d2e"


def test_rotate_key_with_the_old_password_replaces_the_restic_key_too(
    lab: fleet_lab.Lab, base: Path
) -> None:
    """The restic key: the state file's reference now holds a new password, and
    `--old-password` names the one h1 held. After the rotation the old password opens
    nothing, h1 holds only the new one, and every snapshot is still there and restorable.
    Uses the provenance test's repository, after the SSH key's rotation."""
    spec = base / "rotated.yaml"
    old_ref = "env:FLEET_TEST_RESTIC_PASSWORD"
    spec.write_text(
        (base / "provenance.yaml").read_text().replace(old_ref, "env:FLEET_TEST_NEW_PASSWORD")
    )
    state, journal = ("--state", str(spec)), ("--journal", str(base / "provenance.db"))
    env = {**ENV, "FLEET_TEST_NEW_PASSWORD": NEW_PASSWORD}
    os.environ["FLEET_TEST_RESTIC_PASSWORD"] = PASSWORD
    old = open_repository(load_fleet(base / "provenance.yaml").fleet, "db")
    before = {s.id for s in old.snapshots(tag="db")}
    refused = run_reconcile(
        "backup", "rotate-key", "db", "--old-password", "$(id)", "--yes", *state, *journal, env=env
    )
    assert refused.returncode == 1 and "expected a reference" in refused.stderr, refused.stderr
    done = run_reconcile(
        "backup", "rotate-key", "db", "--old-password", old_ref, "--yes", *state, *journal, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    said = re.search(r"restic key (\w+) opens the repository; (\w+) removed", done.stdout)
    assert said and said[1] != said[2], done.stdout
    for output in (done.stdout, done.stderr, refused.stdout, refused.stderr):
        assert PASSWORD not in output and NEW_PASSWORD not in output
    with pytest.raises(WrongPassword):
        old.snapshots(tag="db")
    os.environ["FLEET_TEST_NEW_PASSWORD"] = NEW_PASSWORD
    new = open_repository(load_fleet(spec).fleet, "db")
    assert {s.id for s in new.snapshots(tag="db")} == before  # every snapshot kept
    held = fleet_lab.ssh(lab, "h1", f"cat {backup_path('db', 'env')}")
    assert NEW_PASSWORD in held and PASSWORD not in held
    again = run_reconcile("backup", "now", "db", *state, *journal, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    drill = run_reconcile("backup", "drill", "db", *state, *journal, env=env)
    assert drill.returncode == 0 and "drill passed" in drill.stdout, drill.stdout + drill.stderr
    rerun = run_reconcile(
        "backup", "rotate-key", "db", "--old-password", old_ref, "--yes", *state, *journal, env=env
    )  # a rotation run again finds the new key there and the old one gone
    assert rerun.returncode == 0 and "no older key removed" in rerun.stdout, rerun.stdout


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
