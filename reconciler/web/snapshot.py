"""What the dashboard and the metrics show, read from the journal at request time."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.coordination.leader import LeaderView, who_leads
from reconciler.run.drill import last_dr_drill
from reconciler.store.failover import FailoverStore
from reconciler.store.incidents import IncidentStore
from reconciler.store.journal import Journal, RunRecord
from state.load import LoadedFleet
from state.models import EtcdCoordination


@dataclass
class ServiceRow:
    name: str
    host: str
    health: str  # Healthy, Degraded, Unknown (Argo CD's words)
    sync: str  # Synced, OutOfSync
    detail: str
    seen: float | None


@dataclass
class Snapshot:
    taken: float
    services: list[ServiceRow]
    pending: list[str]
    last_pass: float | None
    spec_error: str | None
    incidents: list[dict[str, Any]]
    runs: list[RunRecord]
    placement: str
    leader: LeaderView | None
    drill: list[dict[str, Any]] = field(default_factory=list)
    drill_at: float | None = None
    unsent: int = 0


def take(journal: Journal, state_file: Path, loaded: LoadedFleet | None) -> Snapshot:
    found = journal.loop_state(str(state_file))
    loop = found[1] if found else {}
    pending = set(loop.get("pending", []))
    services = []
    for name, seen in sorted(loop.get("services", {}).items()):
        health = "Healthy" if seen.get("healthy") else "Degraded"
        out_of_sync = any(p in pending for p in (f"{seen['host']}/{name}", f"{seen['host']}/*"))
        services.append(
            ServiceRow(
                name,
                seen["host"],
                health,
                "OutOfSync" if out_of_sync else "Synced",
                seen.get("detail", ""),
                seen.get("seen"),
            )
        )
    placement, leader = "", None
    if loaded is not None:
        failover = loaded.written.failover
        if failover is not None:
            state = FailoverStore(journal, failover).get()
            active = state.placement.active or failover.primary
            placement = (
                f"{', '.join(failover.services)} on {active} (epoch {state.placement.epoch})"
            )
        coordination = loaded.fleet.reconciler.coordination
        if isinstance(coordination, EtcdCoordination):
            leader = who_leads(coordination)
    store = IncidentStore(journal)
    last_drill = last_dr_drill(journal)
    return Snapshot(
        taken=time.time(),
        services=services,
        pending=sorted(pending),
        last_pass=loop.get("last_pass"),
        spec_error=loop.get("spec_error"),
        incidents=store.recent(20),
        runs=journal.runs(10),
        placement=placement,
        leader=leader,
        drill=list(last_drill.context["steps"]) if last_drill else [],
        drill_at=last_drill.at if last_drill else None,
        unsent=store.pending(),
    )
