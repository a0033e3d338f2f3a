"""The snapshot ledger: which snapshots the controller recorded, and which it found forged.

A host writes its own snapshot's tags, host name and time, so none of them says where a
snapshot came from. The controller records a snapshot when the host that holds the
policy reports it (its `backup-POLICY.last`, or the output of a backup the controller
ran) and the repository lists it with claims that fit (`reconciler.engine.snapshot_judgement`),
with the epoch in force and the controller's own clock. Failover, failback, drills and
restores choose only among recorded snapshots, the most recently recorded first.

Kept in the journal's database, per policy and repository (the URL the policy resolves
to). A snapshot judged forged is kept too, so its P1 is raised once. A policy's copies
(`copies:`) are kept the same way under the copy's URL: an entry there is a snapshot the
controller's own `restic copy` wrote from a recorded one (its `reason` names it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reconciler.store.journal import Journal
from state.repository import controller_url, copy_url, resolve_repository
from state.spec.fleet import Fleet

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot_ledger (
    policy TEXT NOT NULL, repository TEXT NOT NULL, snapshot_id TEXT NOT NULL,
    verdict TEXT NOT NULL, host TEXT NOT NULL, epoch INTEGER NOT NULL,
    snapshot_time REAL NOT NULL, recorded REAL NOT NULL, reason TEXT NOT NULL DEFAULT '',
    announced INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (policy, repository, snapshot_id)
);
CREATE TABLE IF NOT EXISTS held_snapshots (
    policy TEXT NOT NULL, repository TEXT NOT NULL, snapshot_id TEXT NOT NULL,
    why TEXT NOT NULL, since REAL NOT NULL, PRIMARY KEY (policy, repository, snapshot_id)
);
"""

Verdict = Literal["recorded", "forged"]


@dataclass(frozen=True)
class Entry:
    """One snapshot the controller judged: `recorded` (restorable) or `forged` (never)."""

    snapshot_id: str
    verdict: Verdict
    host: str
    epoch: int
    snapshot_time: float
    recorded: float
    reason: str = ""

    @property
    def short_id(self) -> str:
        return self.snapshot_id[:8]

    @property
    def copy_of(self) -> str | None:
        """For an entry of a copy: the recorded snapshot it copies."""
        return self.reason.removeprefix(COPY_OF) if self.reason.startswith(COPY_OF) else None


COPY_OF = "copy of "
EXPORT_LIMIT = 2000  # judged snapshots of a policy shared through etcd, the newest
ENTRY_ROW = (str, str, str, str, int, float, float, str, int)
HELD_ROW = (str, str, str, float)


class Ledger:
    """The ledger in the journal's database. Written only by applies and `watch` (never
    by a dry run, whose state file is a proposal): see `reconciler.flows.once`."""

    def __init__(self, journal: Journal) -> None:
        self.journal, self.db = journal, journal.db
        journal.ensure(SCHEMA)

    def entries(self, fleet: Fleet, policy: str, copy: str | None = None) -> list[Entry]:
        """Every judged snapshot of `policy` at the repository it resolves to in `fleet`
        (or at its copy `copy`), the most recently judged last."""
        rows = self.db.execute(
            "SELECT snapshot_id, verdict, host, epoch, snapshot_time, recorded, reason"
            " FROM snapshot_ledger WHERE policy = ? AND repository = ?"
            " ORDER BY recorded, rowid",
            (policy, repository_of(fleet, policy, copy)),
        ).fetchall()
        return [Entry(*row) for row in rows]

    def recorded(self, fleet: Fleet, policy: str, copy: str | None = None) -> list[Entry]:
        """The restorable snapshots (of the copy `copy`), the most recently recorded last."""
        return [e for e in self.entries(fleet, policy, copy) if e.verdict == "recorded"]

    def knows(self, fleet: Fleet, policy: str, prefix: str) -> bool:
        """Whether a snapshot whose ID starts with `prefix` (a host's report: compared as
        text, never as a pattern) was judged. One indexed look-up: every full pass asks."""
        row = self.db.execute(
            "SELECT 1 FROM snapshot_ledger WHERE policy = ? AND repository = ?"
            " AND substr(snapshot_id, 1, length(?)) = ? LIMIT 1",
            (policy, repository_of(fleet, policy), prefix, prefix),
        ).fetchone()
        return row is not None

    def judged(self, fleet: Fleet, policy: str) -> set[str]:
        return {e.snapshot_id for e in self.entries(fleet, policy)}

    def add(self, fleet: Fleet, policy: str, entry: Entry, copy: str | None = None) -> bool:
        """Keep `entry` (of the copy `copy`); False when that snapshot was judged already
        (the first verdict stands: a forged snapshot is never recorded later)."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO snapshot_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                policy,
                repository_of(fleet, policy, copy),
                entry.snapshot_id,
                entry.verdict,
                entry.host,
                entry.epoch,
                entry.snapshot_time,
                entry.recorded,
                entry.reason,
            ),
        )
        return cursor.rowcount == 1

    def gone(self, fleet: Fleet, policy: str, listed: set[str], copy: str | None = None) -> int:
        """Drop recorded entries the repository (or copy) no longer lists in full: what
        retention forgot, or a repository lost and begun again. Forged entries stay (their
        P1 is raised once). How many were dropped."""
        gone = [
            e.snapshot_id for e in self.recorded(fleet, policy, copy) if e.snapshot_id not in listed
        ]
        for snapshot_id in gone:
            self.db.execute(
                "DELETE FROM snapshot_ledger"
                " WHERE policy = ? AND repository = ? AND snapshot_id = ?",
                (policy, repository_of(fleet, policy, copy), snapshot_id),
            )
        return len(gone)

    def hold(self, fleet: Fleet, policy: str, snapshot_id: str, why: str, at: float) -> None:
        """Keep `snapshot_id` from retention: the newest of a generation (what a rebuild
        or a failover restored), until a snapshot recorded after it passes a drill."""
        self.db.execute(
            "INSERT OR IGNORE INTO held_snapshots VALUES (?, ?, ?, ?, ?)",
            (policy, repository_of(fleet, policy), snapshot_id, why, at),
        )

    def held(self, fleet: Fleet, policy: str) -> dict[str, str]:
        """Held snapshot IDs of `policy`, with why."""
        rows = self.db.execute(
            "SELECT snapshot_id, why FROM held_snapshots WHERE policy = ? AND repository = ?",
            (policy, repository_of(fleet, policy)),
        ).fetchall()
        return {row[0]: row[1] for row in rows}

    def drilled(self, fleet: Fleet, policy: str, snapshot_id: str) -> list[str]:
        """A drill passed on `snapshot_id`: release every held snapshot recorded before
        it (a newer generation is proven). The released IDs."""
        if not snapshot_id:
            return []
        order = {e.snapshot_id: i for i, e in enumerate(self.recorded(fleet, policy))}
        passed = next((i for sid, i in order.items() if sid.startswith(snapshot_id)), None)
        if passed is None:
            return []
        released = [sid for sid in self.held(fleet, policy) if order.get(sid, len(order)) < passed]
        for sid in released:
            self.db.execute(
                "DELETE FROM held_snapshots WHERE policy = ? AND repository = ?"
                " AND snapshot_id = ?",
                (policy, repository_of(fleet, policy), sid),
            )
        return released

    def unannounced(self) -> list[tuple[str, Entry]]:
        """Forged snapshots whose P1 has not been raised yet, with their policy."""
        rows = self.db.execute(
            "SELECT policy, snapshot_id, verdict, host, epoch, snapshot_time, recorded, reason"
            " FROM snapshot_ledger WHERE verdict = 'forged' AND announced = 0"
            " ORDER BY recorded, rowid LIMIT 100"
        ).fetchall()
        return [(row[0], Entry(*row[1:])) for row in rows]

    def announced(self, policy: str, snapshot_id: str) -> None:
        self.db.execute(
            "UPDATE snapshot_ledger SET announced = 1 WHERE policy = ? AND snapshot_id = ?",
            (policy, snapshot_id),
        )

    def export(self, policy: str, limit: int = EXPORT_LIMIT) -> dict[str, list[list[object]]]:
        """Every row of `policy` (its repository and copies, judged and held), the newest
        `limit` judged: what the leader shares with the controllers after it."""
        entries = self.db.execute(
            "SELECT repository, snapshot_id, verdict, host, epoch, snapshot_time, recorded,"
            " reason, announced FROM snapshot_ledger WHERE policy = ?"
            " ORDER BY recorded DESC, rowid DESC LIMIT ?",
            (policy, limit),
        ).fetchall()
        held = self.db.execute(
            "SELECT repository, snapshot_id, why, since FROM held_snapshots WHERE policy = ?"
            " ORDER BY repository, snapshot_id",
            (policy,),
        ).fetchall()
        return {"entries": [list(r) for r in reversed(entries)], "held": [list(r) for r in held]}

    def merge(self, policy: str, exported: object) -> int:
        """Add what another controller's `export` holds and this ledger does not (the
        first verdict stands; a forged snapshot announced there is announced here). Rows
        of the wrong shape are skipped. How many judged snapshots were new here."""
        entries, held = _rows(exported, "entries", ENTRY_ROW), _rows(exported, "held", HELD_ROW)
        added = 0
        for row in entries:
            added += self.db.execute(
                "INSERT OR IGNORE INTO snapshot_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (policy, *row),
            ).rowcount
            if row[8]:
                self.announced(policy, str(row[1]))
        for row in held:
            self.db.execute(
                "INSERT OR IGNORE INTO held_snapshots VALUES (?, ?, ?, ?, ?)", (policy, *row)
            )
        return added


def _rows(exported: object, name: str, shape: tuple[type, ...]) -> list[tuple[object, ...]]:
    """The rows of `exported[name]` that have `shape` (ints accepted for floats); the
    rest are skipped. A verdict is only ever `recorded` or `forged`."""
    found = exported.get(name) if isinstance(exported, dict) else None
    rows = []
    for row in found if isinstance(found, list) else []:
        if not isinstance(row, list) or len(row) != len(shape):
            continue
        fits = all(
            isinstance(v, t) or (t is float and isinstance(v, int))
            for v, t in zip(row, shape, strict=True)
        )
        if fits and (name != "entries" or row[2] in ("recorded", "forged")):
            rows.append(tuple(row))
    return rows


def repository_of(fleet: Fleet, policy: str, copy: str | None = None) -> str:
    """The ledger's key of the policy's repository, or of its copy `copy`: the URL the
    controller reaches it by, which does not change when a failover moves the policy to
    another host (the URL the host uses does: a path on its own disk, or sftp)."""
    spec = fleet.backups[policy]
    if copy is not None:
        return copy_url(fleet, spec.copies[copy].repository)[0]
    return controller_url(fleet, resolve_repository(fleet, spec))
