"""The run journal: an embedded SQLite file recording every run as it happens.

Each write commits at once (WAL mode), so a run that crashes halfway is still
recorded up to its last step. Default path: $FLEET_RECONCILER_HOME/journal.db, or
/var/lib/fleet-reconciler/journal.db.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reconciler.errors import PermanentError
from reconciler.store.text_budget import TextBudget, fingerprint

HOME = Path(os.environ.get("FLEET_RECONCILER_HOME", "/var/lib/fleet-reconciler"))
DEFAULT_PATH = HOME / "journal.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, started REAL NOT NULL, ended REAL, state_file TEXT NOT NULL,
    state_sha256 TEXT NOT NULL, git_commit TEXT, git_dirty INTEGER, mode TEXT NOT NULL,
    plan TEXT, outcome TEXT, error TEXT, pid INTEGER, hostname TEXT
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(id), at REAL NOT NULL, host TEXT NOT NULL,
    service TEXT, step TEXT NOT NULL, status TEXT NOT NULL, detail TEXT
);
CREATE INDEX IF NOT EXISTS results_by_service ON results(host, service, at);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, severity TEXT NOT NULL, kind TEXT NOT NULL, host TEXT, service TEXT,
    message TEXT NOT NULL, context TEXT
);
CREATE TABLE IF NOT EXISTS specs (
    applied REAL NOT NULL, state_file TEXT NOT NULL, state_sha256 TEXT NOT NULL,
    git_commit TEXT, git_dirty INTEGER, signer TEXT
);
CREATE TABLE IF NOT EXISTS loop_state (
    state_file TEXT PRIMARY KEY, updated REAL NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failover (
    pair TEXT PRIMARY KEY, updated REAL NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_renewals (
    host TEXT PRIMARY KEY, renewed REAL NOT NULL, epoch INTEGER NOT NULL
);
"""


RunMode = Literal["apply", "watch", "failover", "drill"]

MAX_TEXT = 4096  # one step's detail, one event's message or context, a run's error
MAX_PLAN = 64 * 1024  # one run's plan, as JSON


@dataclass(frozen=True)
class EventRecord:
    """One journaled event."""

    at: float
    severity: str
    kind: str
    host: str | None
    service: str | None
    message: str
    context: dict[str, Any]


@dataclass(frozen=True)
class RunRecord:
    id: str
    started: float
    ended: float | None
    state_file: str
    git_commit: str | None
    git_dirty: bool | None
    mode: str
    outcome: str | None
    error: str | None
    changes: int


BUSY_TIMEOUT_S = 30  # how long an open or a write waits for another process's lock

# Columns later versions added to a table, for journals written before them.
_ADDED_COLUMNS = (
    ("runs", "pid", "INTEGER"),
    ("runs", "hostname", "TEXT"),
    ("specs", "signer", "TEXT"),
)
SCHEMA_VERSION = 2
"""The journal's schema, in SQLite's `user_version`. 0: written before it was versioned
(brought up to 2 by adding the columns above); 2: this one. A journal newer than this
reconciler is refused: its meaning may have changed."""
KEEP_NEWEST_RUNS = 100  # whatever their age: `history` always has the latest
_OLD_RUNS = (
    "SELECT id FROM runs WHERE started < ? AND ended IS NOT NULL "
    "AND id NOT IN (SELECT id FROM runs ORDER BY started DESC LIMIT ?)"
)
PRUNE_RESULTS = "DELETE FROM results WHERE run_id IN (" + _OLD_RUNS + ")"  # noqa: S608
PRUNE_RUNS = "DELETE FROM runs WHERE id IN (" + _OLD_RUNS + ")"  # noqa: S608
PRUNE_EVENTS = (
    "DELETE FROM events WHERE at < ? AND rowid NOT IN "
    "(SELECT MAX(rowid) FROM events GROUP BY kind, host, service)"
)


class JournalTooNew(PermanentError, RuntimeError):
    """The journal was written by a newer fleet-reconciler."""


class Journal:
    """Append-only record of runs and their per-action results."""

    def __init__(self, path: Path = DEFAULT_PATH, read_only: bool = False) -> None:
        """Open (and create) the journal at `path`. `read_only`: every write through this
        connection fails (SQLite's query_only), as a review's must."""
        # Plans and results name hosts, paths and errors: readable by root alone.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.path = path
        self.budget = TextBudget()
        self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._use_wal()
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            self.db.close()
            raise JournalTooNew(
                f"{path}: journal schema version {version} is newer than this "
                f"fleet-reconciler's ({SCHEMA_VERSION}): upgrade it, or open a backup"
            )
        self.db.executescript(SCHEMA)
        for table, column, kind in _ADDED_COLUMNS:
            self._add_column(table, column, kind)
        if version < SCHEMA_VERSION:
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self.read_only = read_only
        if read_only:
            self.db.execute("PRAGMA query_only = ON")

    def _use_wal(self) -> None:
        """Switch to WAL (a no-op once it is). Switching needs the database to itself, and
        SQLite answers "database is locked" at once, without its busy wait, when another
        process opens the same new journal at that moment: so wait here, as long as the
        busy wait would."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _add_column(self, table: str, column: str, kind: str) -> None:
        """Bring a journal written by an older version up to date. Two processes may
        open the same old journal at once: the one that finds the column already
        added (between its look and its ALTER) has nothing left to do."""
        if column in {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}:
            return
        try:
            self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except sqlite3.OperationalError as exc:
            if "duplicate column name" not in str(exc):
                raise

    def ensure(self, schema: str) -> None:
        """Create a store's tables when they are missing: the one write a read-only
        journal allows (fixed definitions, no data), so that its readers find them."""
        if self.read_only:
            self.db.execute("PRAGMA query_only = OFF")
        try:
            self.db.executescript(schema)
        finally:
            if self.read_only:
                self.db.execute("PRAGMA query_only = ON")

    def close(self) -> None:
        self.db.close()

    def prune(self, older_than: float, now: float | None = None) -> dict[str, int]:
        """Delete runs (with their results) and events older than `older_than` seconds:
        never the newest KEEP_NEWEST_RUNS runs, nor the newest event of each kind and
        subject (the last drill and check of each policy), nor a run under way. The
        ledger, the confirmations, the failover record, incidents and the loop's state
        are other tables, never pruned. How many rows of each went."""
        cutoff = (time.time() if now is None else now) - older_than
        self.db.execute("BEGIN IMMEDIATE")
        try:
            results = self.db.execute(PRUNE_RESULTS, (cutoff, KEEP_NEWEST_RUNS)).rowcount
            runs = self.db.execute(PRUNE_RUNS, (cutoff, KEEP_NEWEST_RUNS)).rowcount
            events = self.db.execute(PRUNE_EVENTS, (cutoff,)).rowcount
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return {"runs": runs, "results": results, "events": events}

    def backup(self, target: Path) -> None:
        """An online copy of the whole journal at `target` (SQLite's backup API: a
        consistent snapshot while the daemon keeps writing), readable by root alone."""
        target.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        copy = sqlite3.connect(target)
        try:
            self.db.backup(copy)
        finally:
            copy.close()

    def fit(self, text: str, limit: int = MAX_TEXT) -> str:
        """`text` as stored: cut to `limit` characters (its size and hash kept), and only
        a fingerprint once the hour's budget is spent."""
        if len(text) > limit:
            text = f"{text[: limit - 120]}… (cut; whole: {fingerprint(text)})"
        if self.budget.take(len(text), time.time()):
            return text
        return f"(not stored, the journal's hourly budget is spent: {fingerprint(text)})"

    def _fit_plan(self, plan: dict[str, Any]) -> str:
        whole = json.dumps(plan)
        if len(whole) <= MAX_PLAN and self.budget.take(len(whole), time.time()):
            return whole
        why = "larger than 64 KiB" if len(whole) > MAX_PLAN else "hourly budget spent"
        kept = {k: plan[k] for k in ("state_file", "state_sha256", "summary") if k in plan}
        return json.dumps({**kept, "not_stored": f"{why}: {fingerprint(whole)}"})

    def start_run(
        self,
        state_file: str,
        state_sha256: str,
        git_commit: str | None,
        git_dirty: bool | None,
        mode: RunMode,
        plan: dict[str, Any],
    ) -> str:
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.db.execute(
            "INSERT INTO runs (id, started, state_file, state_sha256, git_commit, git_dirty, mode,"
            " plan, pid, hostname) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                time.time(),
                state_file,
                state_sha256,
                git_commit,
                None if git_dirty is None else int(git_dirty),
                mode,
                self._fit_plan(plan),
                os.getpid(),
                socket.gethostname(),
            ),
        )
        return run_id

    def mark_abandoned(self) -> list[str]:
        """Mark runs on this machine whose process is gone without finishing them.

        Called by whoever takes the lock, before its own run: a run killed midway
        (SIGKILL, power loss) can never finish itself. Returns their ids."""
        rows = self.db.execute(
            "SELECT id, pid FROM runs WHERE outcome IS NULL AND (hostname = ? OR hostname IS NULL)",
            (socket.gethostname(),),
        ).fetchall()
        abandoned = [run_id for run_id, pid in rows if pid is None or not _alive(pid)]
        for run_id in abandoned:
            self.db.execute(
                "UPDATE runs SET ended = ?, outcome = 'abandoned', error = ? WHERE id = ?",
                (time.time(), "its process ended before the run finished", run_id),
            )
        return abandoned

    def record(
        self, run_id: str, host: str, service: str | None, step: str, status: str, detail: str = ""
    ) -> None:
        self.db.execute(
            "INSERT INTO results (run_id, at, host, service, step, status, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, time.time(), host, service, self.fit(step, 512), status, self.fit(detail)),
        )

    def finish_run(self, run_id: str, outcome: str, error: str | None = None) -> None:
        self.db.execute(
            "UPDATE runs SET ended = ?, outcome = ?, error = ? WHERE id = ?",
            (time.time(), outcome, None if error is None else self.fit(error), run_id),
        )

    def runs(self, limit: int = 20) -> list[RunRecord]:
        rows = self.db.execute(
            "SELECT r.id, r.started, r.ended, r.state_file, r.git_commit, r.git_dirty, r.mode,"
            " r.outcome, r.error, (SELECT COUNT(*) FROM results s WHERE s.run_id = r.id"
            " AND s.status = 'changed') FROM runs r ORDER BY r.started DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            RunRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                None if r[5] is None else bool(r[5]),
                r[6],
                r[7],
                r[8],
                r[9],
            )
            for r in rows
        ]

    def last_change(self, host: str, service: str) -> tuple[float, str] | None:
        """(time, what) of the last 'changed' result for a service, if any."""
        row = self.db.execute(
            "SELECT at, step FROM results WHERE host = ? AND service = ? AND status = 'changed'"
            " ORDER BY at DESC LIMIT 1",
            (host, service),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def record_event(
        self,
        at: float,
        severity: str,
        kind: str,
        host: str | None,
        service: str | None,
        message: str,
        context: dict[str, Any],
    ) -> None:
        self.db.execute(
            "INSERT INTO events (at, severity, kind, host, service, message, context)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, severity, kind, host, service, self.fit(message), self._fit_context(context)),
        )

    def _fit_context(self, context: dict[str, Any]) -> str:
        whole = json.dumps(context)
        fitted = self.fit(whole)
        return whole if fitted == whole else json.dumps({"not_stored": fitted[-120:]})

    def events(
        self, limit: int = 50, kind: str | None = None, service: str | None = None
    ) -> list[EventRecord]:
        """Newest first, optionally only of one kind and about one service."""
        query = "SELECT at, severity, kind, host, service, message, context FROM events"
        where, args = [], []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if service is not None:
            where.append("service = ?")
            args.append(service)
        if where:
            query += " WHERE " + " AND ".join(where)
        rows = self.db.execute(query + " ORDER BY at DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            EventRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}")) for r in rows
        ]

    def record_spec(
        self,
        state_file: str,
        sha256: str,
        git_commit: str | None,
        git_dirty: bool | None,
        signer: str | None = None,
    ) -> None:
        """A spec the loop started applying (and, from a verified source, who signed it)."""
        self.db.execute(
            "INSERT INTO specs (applied, state_file, state_sha256, git_commit, git_dirty, signer)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                state_file,
                sha256,
                git_commit,
                None if git_dirty is None else int(git_dirty),
                signer,
            ),
        )

    def specs(self, limit: int = 20) -> list[tuple[float, str | None, str | None]]:
        """The specs put in force, newest first: (when, commit, signer)."""
        rows = self.db.execute(
            "SELECT applied, git_commit, signer FROM specs ORDER BY applied DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def save_loop_state(self, state_file: str, data: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO loop_state (state_file, updated, data) VALUES (?, ?, ?)"
            " ON CONFLICT(state_file) DO UPDATE"
            " SET updated = excluded.updated, data = excluded.data",
            (state_file, time.time(), json.dumps(data)),
        )

    def loop_state(self, state_file: str) -> tuple[float, dict[str, Any]] | None:
        row = self.db.execute(
            "SELECT updated, data FROM loop_state WHERE state_file = ?", (state_file,)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def results(self, run_id: str) -> list[tuple[str, str | None, str, str, str]]:
        return self.db.execute(
            "SELECT host, service, step, status, detail FROM results WHERE run_id = ? ORDER BY at",
            (run_id,),
        ).fetchall()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
