"""`reconcile suspend` and `resume`: whether `watch` may apply, kept in the fleet's
memory (reconciler.store.memory): with etcd, every controller knows it, so a leader that
dies suspended leaves a suspended fleet to its successor.

While suspended, `watch` goes on observing, probing, paging, renewing the failover
leases and failing over (a suspended fleet is still protected); it plans every pass and
shows the plan, but applies nothing of it until `reconcile resume`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from reconciler.store.journal import Journal
from reconciler.store.memory import Memory, MemoryUnavailable

KEY = "intent/suspension"
MAX_REASON = 500
OLD_SCHEMA = "suspension"  # the journal's table before the memory held it


@dataclass(frozen=True)
class Suspended:
    since: float
    reason: str


class Suspension:
    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def get(self) -> Suspended | None:
        """The suspension in force; an unreadable record counts as one (nothing is
        applied on a record nobody can read)."""
        raw = self.memory.get(KEY)
        if raw is None:
            return None
        try:
            found = json.loads(raw)
            return Suspended(float(found["since"]), str(found["reason"])[:MAX_REASON])
        except (ValueError, KeyError, TypeError):
            return Suspended(
                0.0, "the suspension record cannot be read: `reconcile resume` clears it"
            )

    def suspend(self, reason: str) -> Suspended:
        """Suspend applying (kept as it was when already suspended)."""
        found = self.get()
        if found is not None:
            return found
        made = Suspended(time.time(), reason[:MAX_REASON])
        self.memory.put(KEY, json.dumps({"since": made.since, "reason": made.reason}))
        return made

    def resume(self) -> Suspended | None:
        """Resume applying; what was in force, if anything."""
        found = self.get()
        self.memory.delete(KEY)
        return found


def lifted(memory: Memory) -> bool:
    """Whether no suspension is in force (False while the memory cannot tell)."""
    try:
        return Suspension(memory).get() is None
    except MemoryUnavailable:
        return False


def move_old_suspension(journal: Journal, memory: Memory) -> None:
    """A suspension an earlier version kept in the journal's own table moves into the
    memory, once."""
    exists = journal.db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (OLD_SCHEMA,)
    ).fetchone()
    if exists is None or journal.read_only:
        return
    row = journal.db.execute("SELECT since, reason FROM suspension WHERE id = 1").fetchone()
    if row is not None and memory.get(KEY) is None:
        memory.put(KEY, json.dumps({"since": float(row[0]), "reason": str(row[1])}))
    journal.db.execute("DROP TABLE suspension")
