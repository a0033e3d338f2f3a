"""The fleet's memory: what a controller must remember to act correctly (operator intent
first: a suspension), behind one small interface with two backends.

- `LocalMemory`, in the journal's SQLite file: one controller (the default).
- `EtcdMemory` (reconciler.coordination.etcd_memory), with `coordination: {kind: etcd}`:
  every controller reads the same keys, so the one that takes over after a leader dies
  knows what it knew.

Keys are short paths (`intent/suspension`); values are JSON text of at most
`MAX_VALUE_BYTES`. The journal stays each controller's local audit log.
"""

from __future__ import annotations

import re
import time
from typing import Protocol

from reconciler.errors import PermanentError, TemporaryError
from reconciler.store.journal import Journal

MAX_VALUE_BYTES = 64 * 1024
KEY = re.compile(r"^[a-z][a-z0-9_-]*(/[A-Za-z0-9_.:-]{1,128}){1,3}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS memory (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, updated REAL NOT NULL
);
"""


class Deposed(TemporaryError):
    """A write refused because the writer no longer leads (another controller does)."""


class MemoryRefused(PermanentError, ValueError):
    """A key or a value outside the memory's bounds: a programming error, never data."""


class MemoryUnavailable(TemporaryError):
    """The memory could not be read or written now (etcd unreachable)."""


class Memory(Protocol):
    """One key at a time; every method raises MemoryUnavailable when the backend cannot
    answer, and a write by a deposed leader raises Deposed."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> bool:
        """Whether the key was there."""
        ...

    def items(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix/`, with its value."""
        ...

    def where(self) -> str:
        """Where the memory lives, for people (`status`)."""
        ...


def checked(key: str, value: str | None = None) -> None:
    """Refuse a key or a value outside the bounds (a caller's mistake, raised at once)."""
    if not KEY.fullmatch(key):
        raise MemoryRefused(f"memory key {key!r}: expected a short path such as intent/name")
    if value is not None and len(value.encode()) > MAX_VALUE_BYTES:
        raise MemoryRefused(f"memory key {key}: a value over {MAX_VALUE_BYTES} bytes")


class MemoryOf(Protocol):
    """The fleet's memory as a controller writes it (None: one controller, no etcd); for
    a `host`'s keys, fenced by the token of the shard that host is in."""

    def __call__(self, host: str | None = None) -> Memory | None: ...


class LocalMemory:
    """The memory of one controller, in its journal."""

    def __init__(self, journal: Journal) -> None:
        self.db, self.journal = journal.db, journal
        journal.ensure(SCHEMA)

    def get(self, key: str) -> str | None:
        checked(key)
        row = self.db.execute("SELECT value FROM memory WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def put(self, key: str, value: str) -> None:
        checked(key, value)
        self.db.execute(
            "INSERT INTO memory (key, value, updated) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            (key, value, time.time()),
        )

    def delete(self, key: str) -> bool:
        checked(key)
        return self.db.execute("DELETE FROM memory WHERE key = ?", (key,)).rowcount == 1

    def items(self, prefix: str) -> dict[str, str]:
        checked(prefix + "/x")
        rows = self.db.execute(
            "SELECT key, value FROM memory WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix) + 1, prefix + "/"),
        ).fetchall()
        return {str(k): str(v) for k, v in rows}

    def where(self) -> str:
        return f"this controller's journal ({self.journal.path})"
