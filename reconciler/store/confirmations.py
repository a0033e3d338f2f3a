"""Snapshots the repository has confirmed, so a plan need not list the repository again.

Each backup script leaves `backup-POLICY.last` on its host (the new snapshot's ID and
time), which the host snapshot reads for free. A plan asks the repository only when
that ID is one the repository has not confirmed yet, or when the confirmation is older
than the policy's RPO. An ID the repository never confirmed is never taken for a backup.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.store.journal import Journal
from reconciler.store.ledger import repository_of
from state.spec.fleet import Fleet

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot_confirmations (
    policy TEXT NOT NULL, repository TEXT NOT NULL, snapshot_id TEXT NOT NULL,
    snapshot_time REAL NOT NULL, snapshots INTEGER NOT NULL, confirmed REAL NOT NULL,
    PRIMARY KEY (policy, repository)
);
CREATE TABLE IF NOT EXISTS snapshot_history (
    policy TEXT NOT NULL, repository TEXT NOT NULL, snapshot_id TEXT NOT NULL,
    snapshot_time REAL NOT NULL, PRIMARY KEY (policy, repository, snapshot_id)
);
"""
HISTORY_DAYS = 35  # a month of the dashboard's age chart, and the month before it


@dataclass(frozen=True)
class Confirmation:
    """The newest snapshot of a policy, as the repository listed it at `confirmed`."""

    snapshot_id: str
    snapshot_time: float
    snapshots: int
    confirmed: float


class Confirmations:
    """Confirmations kept in the journal's database, per policy and repository."""

    def __init__(self, journal: Journal) -> None:
        self.db = journal.db
        journal.ensure(SCHEMA)

    def get(self, policy: str, repository: str) -> Confirmation | None:
        row = self.db.execute(
            "SELECT snapshot_id, snapshot_time, snapshots, confirmed FROM snapshot_confirmations"
            " WHERE policy = ? AND repository = ?",
            (policy, repository),
        ).fetchone()
        return Confirmation(*row) if row else None

    def of_policy(self, fleet: Fleet, policy: str) -> Confirmation | None:
        """The policy's confirmation by the repository it resolves to in `fleet` (the one
        key that the plan writes and that the dashboard and status read)."""
        return self.get(policy, repository_of(fleet, policy))

    def put_policy(self, fleet: Fleet, policy: str, found: Confirmation) -> None:
        self.put(policy, repository_of(fleet, policy), found)

    def history(self, fleet: Fleet, policy: str, since: float) -> list[float]:
        """Times of the newest snapshots confirmed since `since`, and of the one before
        (the chart's age at its left edge), oldest first."""
        key = (policy, repository_of(fleet, policy))
        rows = self.db.execute(
            "SELECT snapshot_time FROM snapshot_history WHERE policy = ? AND repository = ?"
            " AND snapshot_time >= (SELECT COALESCE(MAX(snapshot_time), 0) FROM"
            " snapshot_history WHERE policy = ? AND repository = ? AND snapshot_time < ?)"
            " ORDER BY snapshot_time LIMIT 5000",
            (*key, *key, since),
        ).fetchall()
        return [float(r[0]) for r in rows]

    def put(self, policy: str, repository: str, found: Confirmation) -> None:
        """Confirm `found` as the newest; it joins the history, which keeps HISTORY_DAYS."""
        self.db.execute(
            "INSERT OR IGNORE INTO snapshot_history VALUES (?, ?, ?, ?)",
            (policy, repository, found.snapshot_id, found.snapshot_time),
        )
        self.db.execute(
            "DELETE FROM snapshot_history WHERE policy = ? AND repository = ?"
            " AND snapshot_time < ?",
            (policy, repository, min(found.confirmed - HISTORY_DAYS * 86400, found.snapshot_time)),
        )
        self.db.execute(
            "INSERT INTO snapshot_confirmations VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(policy, repository) DO UPDATE SET snapshot_id = excluded.snapshot_id,"
            " snapshot_time = excluded.snapshot_time, snapshots = excluded.snapshots,"
            " confirmed = excluded.confirmed",
            (
                policy,
                repository,
                found.snapshot_id,
                found.snapshot_time,
                found.snapshots,
                found.confirmed,
            ),
        )
