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
