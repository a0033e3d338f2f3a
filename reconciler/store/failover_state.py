"""The failover state: where the failover services run, the epoch, the detection clock
and a move in progress. One row per primary/backup pair in the journal, written whole in
one SQLite commit, so a controller that restarts (or crashes mid-move) reads back one
consistent placement."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.store.journal import Journal
from state.load import LoadedFleet
from state.placement import HOME, Placement
from state.spec.failover import Failover

MoveKind = Literal["failover", "switchover"]
# A move's steps in order. "lease": the target may have been told the new epoch, so a
# move rolled back from here on leaves the epoch raised.
MoveStep = Literal["stop", "backup", "restore", "lease", "deploy"]


class Move(BaseModel):
    """A move under way. Before its placement is recorded it is rolled back on resume;
    after, it is finished by deploying the recorded placement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: MoveKind
    source: str
    target: str
    epoch: int
    step: MoveStep
    started: float
    reason: str = ""


class FailoverState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    placement: Placement = HOME
    since: float | None = Field(None, description="When the placement last changed.")
    reason: str = Field("", description="Why the services run where they do.")
    down_since: float | None = Field(
        None, description="Start of the current outage of the primary, as both sides see it."
    )
    last_contact: float | None = Field(None, description="Last time the primary was reached.")
    healthy_since: float | None = Field(
        None, description="While failed over: since when the primary is reachable again."
    )
    held: str | None = Field(
        None, description="A failover that waits for `reconcile failover --accept-data-loss`."
    )
    data_loss: str = Field("", description="The stated data loss of the last move.")
    alarmed: bool = Field(
        False, description="A P0 `primary_down` was raised for the current outage."
    )
    attempts: int = Field(
        0, ge=0, description="Promotions tried and rolled back in the current outage."
    )
    retry_at: float | None = Field(
        None, description="After a rolled-back promotion: not tried again before this."
    )
    failure: str = Field("", description="Why the last promotion was rolled back.")
    move: Move | None = None


def pair_key(failover: Failover) -> str:
    return f"{failover.primary}->{failover.backup}"


class FailoverStore:
    def __init__(self, journal: Journal, failover: Failover) -> None:
        self.journal, self.key = journal, pair_key(failover)

    def get(self) -> FailoverState:
        row = self.journal.db.execute(
            "SELECT data FROM failover WHERE pair = ?", (self.key,)
        ).fetchone()
        return FailoverState.model_validate_json(row[0]) if row else FailoverState()

    def put(self, state: FailoverState) -> None:
        self.journal.db.execute(
            "INSERT INTO failover (pair, updated, data) VALUES (?, ?, ?)"
            " ON CONFLICT(pair) DO UPDATE SET updated = excluded.updated, data = excluded.data",
            (self.key, time.time(), state.model_dump_json()),
        )

    def renewed(self, host: str, at: float, epoch: int) -> None:
        """Record a lease renewal that `host` confirmed at `at` (after it answered)."""
        self.journal.db.execute(
            "INSERT INTO lease_renewals (host, renewed, epoch) VALUES (?, ?, ?)"
            " ON CONFLICT(host) DO UPDATE SET renewed = excluded.renewed, epoch = excluded.epoch",
            (host, at, epoch),
        )

    def last_renewal(self, host: str) -> float | None:
        """When `host` last confirmed a lease (from any thread of this controller)."""
        row = self.journal.db.execute(
            "SELECT renewed FROM lease_renewals WHERE host = ?", (host,)
        ).fetchone()
        return float(row[0]) if row else None


def placed(loaded: LoadedFleet, journal: Journal) -> LoadedFleet:
    """`loaded` with the failover services where the failover store says they run."""
    failover = loaded.written.failover
    if failover is None:
        return loaded.placed(Placement())
    return loaded.placed(FailoverStore(journal, failover).get().placement)
