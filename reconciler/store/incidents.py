"""Incidents and the notification outbox: one interface (`Incidents`), two backends.

- `LocalIncidents`, in the journal: one controller (the default); they survive restarts
  and one-shot runs.
- `EtcdIncidents` (reconciler.coordination.etcd_incidents), with `coordination: {kind:
  etcd}`: every controller sees the same incidents and the same outbox, so a successor
  resolves what its predecessor opened and sends what it queued.

A notification is written to the outbox before it is sent and marked sent once its
channel accepted it. Its key (incident, transition, sequence, channel) is unique, so a
notification is queued once however often the event that caused it is replayed. A
sender delivers a channel's queue only while it holds that channel's claim (`claim`):
with one controller always; with etcd, one controller at a time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.store.journal import Journal

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status TEXT NOT NULL,
    updated REAL NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents(fingerprint, status);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, channel TEXT NOT NULL,
    incident TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL, sent REAL, error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(sent, next_try);
"""


@dataclass(frozen=True)
class Queued:
    seq: int
    key: str
    channel: str
    incident: str
    payload: dict[str, Any]
    attempts: int
    next_try: float = 0.0


class Incidents(Protocol):
    """What the incident desk, the outbox sender, `status` and `incidents` need. Every
    method may raise MemoryUnavailable (etcd unreachable); a deposed leader's write
    raises Deposed."""

    def open_for(self, fingerprint: str) -> dict[str, Any] | None: ...

    def put(
        self, incident_id: str, fingerprint: str, status: str, data: dict[str, Any]
    ) -> None: ...

    def get(self, incident_id: str) -> dict[str, Any] | None: ...

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """Open incidents first, then the newest resolved ones, `limit` in all."""
        ...

    def opened_since(self, since: float, limit: int = 1000) -> list[dict[str, Any]]: ...

    def enqueue(self, key: str, channel: str, incident: str, payload: dict[str, Any]) -> bool:
        """Queue one notification; False when that key is already queued (or sent)."""
        ...

    def due(self, now: float, limit: int = 20) -> list[Queued]: ...

    def unsent(self, limit: int = 200, channel: str | None = None) -> list[Queued]: ...

    def waiting_channels(self) -> list[str]: ...

    def pending(self) -> int: ...

    def claim(self, channel: str) -> bool:
        """Whether this sender may deliver `channel`'s queue now (and holds it for a
        while): no other controller's sender does."""
        ...

    def release(self) -> None:
        """Give up this sender's claims at once (a clean exit)."""
        ...

    def sent(self, item: Queued) -> None: ...

    def failed(self, item: Queued, error: str, retry_at: float) -> None: ...

    def deliveries(self, incident: str) -> list[tuple[str, str, float | None, str | None]]:
        """(key, channel, sent, error) of an incident's notifications, oldest first."""
        ...

    def where(self) -> str:
        """Where they live, for people (`status`)."""
        ...


class LocalIncidents:
    """One controller's incidents and outbox, in its journal."""

    def __init__(self, journal: Journal) -> None:
        self.db, self.journal = journal.db, journal
        journal.ensure(SCHEMA)

    # -- incidents ------------------------------------------------------------------
    def open_for(self, fingerprint: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT data FROM incidents WHERE fingerprint = ? AND status = 'open'"
            " ORDER BY updated DESC LIMIT 1",
            (fingerprint,),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, incident_id: str, fingerprint: str, status: str, data: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO incidents (id, fingerprint, status, updated, data) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET status = excluded.status,"
            " updated = excluded.updated, data = excluded.data",
            (incident_id, fingerprint, status, time.time(), json.dumps(data)),
        )

    def get(self, incident_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT data FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT data FROM incidents ORDER BY status = 'open' DESC, updated DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def opened_since(self, since: float, limit: int = 1000) -> list[dict[str, Any]]:
        """Incidents that opened at or after `since`, newest first (at most `limit`)."""
        rows = self.db.execute(
            "SELECT data FROM incidents WHERE updated >= ? ORDER BY updated DESC LIMIT ?",
            (since, limit),
        ).fetchall()
        found = [json.loads(r[0]) for r in rows]
        return [i for i in found if i.get("first_seen", 0) >= since]

    # -- outbox ---------------------------------------------------------------------
    def enqueue(self, key: str, channel: str, incident: str, payload: dict[str, Any]) -> bool:
        """Queue one notification; False when that key is already queued (or sent)."""
        done = self.db.execute(
            "INSERT OR IGNORE INTO outbox (key, channel, incident, payload, created, next_try)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, channel, incident, json.dumps(payload), time.time(), 0.0),
        )
        return done.rowcount == 1

    def due(self, now: float, limit: int = 20) -> list[Queued]:
        """Unsent notifications whose time has come, oldest first."""
        return due(self.unsent(limit=10_000), now, limit)

    def unsent(self, limit: int = 200, channel: str | None = None) -> list[Queued]:
        """Every unsent notification (of one channel, if given), oldest first, whether
        its time has come or not."""
        rows = self.db.execute(
            "SELECT seq, key, channel, incident, payload, attempts, next_try FROM outbox"
            " WHERE sent IS NULL AND (? IS NULL OR channel = ?) ORDER BY seq LIMIT ?",
            (channel, channel, limit),
        ).fetchall()
        return [Queued(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    def waiting_channels(self) -> list[str]:
        """The channels with something unsent, each its own queue."""
        rows = self.db.execute("SELECT DISTINCT channel FROM outbox WHERE sent IS NULL")
        return sorted(r[0] for r in rows)

    def pending(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM outbox WHERE sent IS NULL").fetchone()[0])

    def claim(self, channel: str) -> bool:
        return True  # one controller: its sender is the only one

    def release(self) -> None:
        return None

    def sent(self, item: Queued) -> None:
        self.db.execute(
            "UPDATE outbox SET sent = ?, error = NULL WHERE key = ?", (time.time(), item.key)
        )

    def failed(self, item: Queued, error: str, retry_at: float) -> None:
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, error = ?, next_try = ? WHERE key = ?",
            (error, retry_at, item.key),
        )

    def deliveries(self, incident: str) -> list[tuple[str, str, float | None, str | None]]:
        """(key, channel, sent, error) of an incident's notifications, oldest first."""
        rows = self.db.execute(
            "SELECT key, channel, sent, error FROM outbox WHERE incident = ? ORDER BY seq",
            (incident,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def where(self) -> str:
        return f"this controller's journal ({self.journal.path})"


def due(queued: list[Queued], now: float, limit: int) -> list[Queued]:
    """Those of `queued` whose time has come, in their order, at most `limit`."""
    return [q for q in queued if q.next_try <= now][:limit]
