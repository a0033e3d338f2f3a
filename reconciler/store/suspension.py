"""`reconcile suspend` and `resume`: whether `watch` may apply, kept in the journal.

While suspended, `watch` goes on observing, probing, paging, renewing the failover
leases and failing over (a suspended fleet is still protected); it plans every pass and
shows the plan, but applies nothing of it until `reconcile resume`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from reconciler.store.journal import Journal

SCHEMA = """
CREATE TABLE IF NOT EXISTS suspension (
    id INTEGER PRIMARY KEY CHECK (id = 1), since REAL NOT NULL, reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Suspended:
    since: float
    reason: str


class Suspension:
    def __init__(self, journal: Journal) -> None:
        self.db, self.journal = journal.db, journal
        journal.ensure(SCHEMA)

    def get(self) -> Suspended | None:
        row = self.db.execute("SELECT since, reason FROM suspension WHERE id = 1").fetchone()
        return Suspended(row[0], row[1]) if row else None

    def suspend(self, reason: str) -> Suspended:
        """Suspend applying (kept as it was when already suspended)."""
        self.db.execute(
            "INSERT OR IGNORE INTO suspension (id, since, reason) VALUES (1, ?, ?)",
            (time.time(), self.journal.fit(reason, 500)),
        )
        found = self.get()
        assert found is not None
        return found

    def resume(self) -> Suspended | None:
        """Resume applying; what was in force, if anything."""
        found = self.get()
        self.db.execute("DELETE FROM suspension WHERE id = 1")
        return found
