"""A journal written by an older version is brought up to date when it is opened, by
any number of processes at once (CI saw two `reconcile` processes that opened the same
new journal both add its `signer` column: "duplicate column name")."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from reconciler.store.journal import Journal

OLD_TABLES = """
CREATE TABLE runs (id TEXT PRIMARY KEY, started REAL NOT NULL, ended REAL,
    state_file TEXT NOT NULL, state_sha256 TEXT NOT NULL, git_commit TEXT,
    git_dirty INTEGER, mode TEXT NOT NULL, plan TEXT, outcome TEXT, error TEXT);
CREATE TABLE specs (applied REAL NOT NULL, state_file TEXT NOT NULL,
    state_sha256 TEXT NOT NULL, git_commit TEXT, git_dirty INTEGER);
"""
OPENERS, ROUNDS = 6, 8


def _open(path: str, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait(timeout=30)
    Journal(Path(path)).close()


def columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def test_an_old_journal_opened_by_many_processes_at_once_is_upgraded_once(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        path = tmp_path / f"old-{round_}.db"
        with sqlite3.connect(path) as db:
            db.executescript(OLD_TABLES)
        start = context.Barrier(OPENERS)
        openers = [context.Process(target=_open, args=(str(path), start)) for _ in range(OPENERS)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=60)
        assert [o.exitcode for o in openers] == [0] * OPENERS, f"round {round_}"
        assert {"pid", "hostname"} <= columns(path, "runs")
        assert "signer" in columns(path, "specs")


def test_a_new_journal_has_every_column_without_an_upgrade(tmp_path: Path) -> None:
    Journal(tmp_path / "new.db").close()
    assert "signer" in columns(tmp_path / "new.db", "specs")


def test_a_journal_is_versioned_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    import pytest

    from reconciler.store.journal import SCHEMA_VERSION, JournalTooNew

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:
        db.executescript(OLD_TABLES)
    Journal(old).close()  # migrated: columns added, version set
    with sqlite3.connect(old) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "signer" in columns(old, "specs")
    newer = tmp_path / "newer.db"
    Journal(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JournalTooNew, match=r"schema version 3 is newer than this"):
        Journal(newer)


def test_retention_prunes_old_runs_and_events_never_the_ledger_or_the_newest(
    tmp_path: Path,
) -> None:
    import time

    from reconciler.events.bus import Event
    from reconciler.events.sinks import journal_sink
    from reconciler.store import journal as journal_module

    journal = Journal(tmp_path / "journal.db")
    now = time.time()
    old_day = now - 200 * 86400
    journal_module.KEEP_NEWEST_RUNS = 2
    try:
        ids = []
        for started in (old_day, old_day + 1, old_day + 2, now - 60):
            run = journal.start_run("f.yaml", "0" * 64, None, None, "apply", {})
            journal.db.execute("UPDATE runs SET started = ? WHERE id = ?", (started, run))
            journal.record(run, "h1", None, "deploy", "ok")
            journal.finish_run(run, "converged")
            ids.append(run)
        sink = journal_sink(journal)
        sink(Event("P3", "drill_passed", "db ok", "h1", "backup:db", at=old_day))
        sink(Event("P3", "drill_passed", "db ok", "h1", "backup:db", at=old_day + 5))
        sink(Event("P3", "healed", "old heal", "h1", "agent", at=old_day))
        sink(Event("P3", "healed", "new heal", "h1", "agent", at=now))
        ledger_rows = journal.db.execute("SELECT COUNT(*) FROM failover").fetchone()[0]
        pruned = journal.prune(90 * 86400, now)
        assert pruned == {"runs": 2, "results": 2, "events": 2}
        assert [r.id for r in journal.runs(10)] == [ids[3], ids[2]]  # the newest two stay
        kinds = [(e.kind, e.message) for e in journal.events(10)]
        assert ("drill_passed", "db ok") in kinds  # the last drill of the policy stays
        assert ("healed", "new heal") in kinds and ("healed", "old heal") not in kinds
        assert journal.db.execute("SELECT COUNT(*) FROM failover").fetchone()[0] == ledger_rows
    finally:
        journal_module.KEEP_NEWEST_RUNS = 100


def test_an_online_backup_is_a_whole_private_copy(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    run = journal.start_run("f.yaml", "0" * 64, None, None, "apply", {})
    journal.finish_run(run, "converged")
    copy = tmp_path / "backups/journal-copy.db"
    journal.backup(copy)
    assert copy.stat().st_mode & 0o777 == 0o600
    assert [r.id for r in Journal(copy).runs(5)] == [run]


def test_the_journal_commands(tmp_path: Path, capsys: object) -> None:
    from reconciler.cli.main import main
    from tests.unit.test_spec import BASE

    journal = tmp_path / "journal.db"
    Journal(journal).close()
    state = tmp_path / "fleet.yaml"
    state.write_text(BASE)
    copy = tmp_path / "copy" / "journal.db"
    assert main(["journal", "backup", str(copy), "--journal", str(journal)]) == 0
    assert copy.exists() and copy.stat().st_mode & 0o777 == 0o600
    assert main(["journal", "backup", str(journal), "--journal", str(journal)]) == 64
    assert main(["journal", "prune", str(state), "--journal", str(journal)]) == 0
