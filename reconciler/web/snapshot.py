"""What the dashboard and the metrics show, read from the journal: once per pass of the
loop (`SnapshotCache`), then served from memory to the page, every live client and
every scrape."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.coordination.etcd_incidents import incidents_for
from reconciler.coordination.etcd_memory import memory_for
from reconciler.coordination.leader import LeaderView, who_leads
from reconciler.events.verification_events import CHECK_KINDS, DRILL_KINDS, last_event
from reconciler.flows.drill import last_dr_drill
from reconciler.render.charts import HealPoint, backup_age_chart, heal_chart, heal_trend
from reconciler.repositories.restorable import copies_taken
from reconciler.store.confirmations import Confirmations
from reconciler.store.failover_state import FailoverStore
from reconciler.store.incidents import Incidents, LocalIncidents
from reconciler.store.journal import EventRecord, Journal, RunRecord
from reconciler.store.ledger import Ledger
from reconciler.store.memory import LocalMemory, MemoryUnavailable
from reconciler.store.suspension import Suspended, Suspension
from state.load import LoadedFleet
from state.spec.controller import EtcdCoordination

CHART_WINDOW_S = 7 * 86400  # the charts' last days


@dataclass
class ServiceRow:
    name: str
    host: str
    health: str  # Healthy, Degraded, Unknown (Argo CD's words)
    sync: str  # Synced, OutOfSync
    detail: str
    seen: float | None
    last_healthy: float | None = None  # when it last passed its checks (or the loop started)


@dataclass
class BackupRow:
    policy: str
    host: str
    age: float | None  # of the newest snapshot the repository confirmed
    rpo: float
    last_check: str
    last_drill: str
    chart: str = ""  # SVG: the newest snapshot's age over the last days, against the RPO
    copy: str | None = None  # a row of the policy's copy (`copies:`), its age from the ledger
    newest_at: float | None = None  # when the newest snapshot was taken (epoch seconds)

    @property
    def within(self) -> bool:
        return self.age is not None and self.age <= self.rpo


@dataclass
class Snapshot:
    taken: float
    services: list[ServiceRow]
    pending: list[str]
    plan_text: str
    last_pass: float | None
    spec_error: str | None
    incidents: list[dict[str, Any]]
    runs: list[RunRecord]
    placement: str
    leader: LeaderView | None
    drill: list[dict[str, Any]] = field(default_factory=list)
    drill_at: float | None = None
    unsent: int = 0
    backups: list[BackupRow] = field(default_factory=list)
    active: str = ""  # the host running the failover services
    epoch: int = 0
    heal_chart: str = ""  # SVG: each incident's time to heal over the last days
    heal_trend: str = ""
    spec_commit: str | None = None  # the git source's commit in force (`source:`)
    source: str | None = None
    pinned: bool = False  # `reconcile pin` holds the commit in force
    branch_tip: str | None = None
    held: str | None = None  # a tip that does not descend from the commit in force
    suspended: Suspended | None = None  # `reconcile suspend`
    hosts: dict[str, bool] = field(default_factory=dict)  # reachable at the loop's last look
    backoffs: int = 0  # (host, service) pairs whose healing is backing off


def take(journal: Journal, state_file: Path, loaded: LoadedFleet | None) -> Snapshot:
    found = journal.loop_state(str(state_file))
    loop = found[1] if found else {}
    pending = set(loop.get("pending", []))
    services = _service_rows(loop.get("services", {}), pending)
    placement, active, epoch = _placement(journal, loaded)
    backups = _backups(journal, loaded) if loaded is not None else []
    coordination = loaded.fleet.reconciler.coordination if loaded is not None else None
    leader = who_leads(coordination) if isinstance(coordination, EtcdCoordination) else None
    store = incidents_for(coordination, journal) if coordination else LocalIncidents(journal)
    now = time.time()
    try:
        heals, incidents, unsent = heal_points(store, now), store.recent(20), store.pending()
    except MemoryUnavailable:  # etcd away: the page shows its coordination error instead
        heals, incidents, unsent = [], [], 0
    last_drill = last_dr_drill(journal)
    return Snapshot(
        taken=now,
        services=services,
        pending=sorted(pending),
        plan_text=str(loop.get("plan_text", "")),
        last_pass=loop.get("last_pass"),
        spec_error=loop.get("spec_error"),
        spec_commit=loop.get("spec_commit"),
        source=loop.get("source"),
        pinned=bool(loop.get("pinned")),
        branch_tip=loop.get("branch_tip"),
        held=loop.get("held"),
        suspended=_suspended(journal, loaded),
        hosts={str(k): bool(v) for k, v in (loop.get("hosts") or {}).items()},
        backoffs=len(loop.get("backoffs") or {}),
        incidents=incidents,
        runs=journal.runs(10),
        placement=placement,
        leader=leader,
        drill=list(last_drill.context["steps"]) if last_drill else [],
        drill_at=last_drill.at if last_drill else None,
        unsent=unsent,
        backups=backups,
        active=active,
        epoch=epoch,
        heal_chart=heal_chart(heals, now, CHART_WINDOW_S),
        heal_trend=heal_trend(heals),
    )


def _service_rows(seen_by_name: dict[str, Any], pending: set[str]) -> list[ServiceRow]:
    """Each service as the loop last saw it: health, and in sync or not (Argo CD's words)."""
    rows = []
    for name, seen in sorted(seen_by_name.items()):
        health = "Healthy" if seen.get("healthy") else "Degraded"
        out_of_sync = any(p in pending for p in (f"{seen['host']}/{name}", f"{seen['host']}/*"))
        rows.append(
            ServiceRow(
                name,
                seen["host"],
                health,
                "OutOfSync" if out_of_sync else "Synced",
                seen.get("detail", ""),
                seen.get("seen"),
                seen.get("last_healthy"),
            )
        )
    return rows


def _placement(journal: Journal, loaded: LoadedFleet | None) -> tuple[str, str, int]:
    """(where the failover services run, in words; the active host; the epoch)."""
    failover = loaded.written.failover if loaded is not None else None
    if failover is None:
        return "", "", 0
    state = FailoverStore(journal, failover).get()
    active, epoch = state.placement.active or failover.primary, state.placement.epoch
    return f"{', '.join(failover.services)} on {active} (epoch {epoch})", active, epoch


def _suspended(journal: Journal, loaded: LoadedFleet | None) -> Suspended | None:
    """The suspension in the fleet's memory (not known while etcd does not answer)."""
    coordination = loaded.fleet.reconciler.coordination if loaded is not None else None
    memory = memory_for(coordination, journal) if coordination else LocalMemory(journal)
    try:
        return Suspension(memory).get()
    except MemoryUnavailable:
        return None


def heal_points(store: Incidents, now: float) -> list[HealPoint]:
    """The incidents of the chart's window: when each opened, how long it took to heal."""
    points = []
    for incident in store.opened_since(now - CHART_WINDOW_S):
        opened, resolved = incident.get("first_seen"), incident.get("resolved_at")
        if not isinstance(opened, int | float):
            continue
        healed = resolved - opened if isinstance(resolved, int | float) else None
        points.append(HealPoint(float(opened), healed, str(incident.get("severity", ""))))
    return points


def _backups(journal: Journal, loaded: LoadedFleet) -> list[BackupRow]:
    confirmations, now, rows = Confirmations(journal), time.time(), []
    for name, policy in sorted(loaded.fleet.backups.items()):
        found = confirmations.of_policy(loaded.fleet, name)
        check = last_event(journal, CHECK_KINDS, name)
        drill = last_event(journal, DRILL_KINDS, name)
        rows.append(
            BackupRow(
                name,
                policy.host,
                now - found.snapshot_time if found else None,
                policy.rpo.total_seconds(),
                _last(check, "backup_check_", now),
                _last(drill, "drill_", now),
                backup_age_chart(
                    confirmations.history(loaded.fleet, name, now - CHART_WINDOW_S),
                    policy.rpo.total_seconds(),
                    now,
                    CHART_WINDOW_S,
                ),
                newest_at=found.snapshot_time if found else None,
            )
        )
        rows += _copy_rows(journal, loaded, name, now)
    return rows


def _copy_rows(journal: Journal, loaded: LoadedFleet, name: str, now: float) -> list[BackupRow]:
    """One row per copy of the policy: its newest recorded snapshot's age (the ledger)."""
    policy = loaded.fleet.backups[name]
    if not policy.copies:
        return []
    taken = copies_taken(loaded, Ledger(journal), name)
    rows = []
    for copy, spec in sorted(policy.copies.items()):
        check = last_event(journal, CHECK_KINDS, name, copy)
        drill = last_event(journal, DRILL_KINDS, name, copy)
        newest = taken.get(copy)
        rows.append(
            BackupRow(
                name,
                spec.repository,
                now - newest.timestamp() if newest else None,
                spec.rpo.total_seconds(),
                _last(check, "backup_check_", now),
                _last(drill, "drill_", now),
                copy=copy,
                newest_at=newest.timestamp() if newest else None,
            )
        )
    return rows


def _last(event: EventRecord | None, prefix: str, now: float) -> str:
    return f"{event.kind.removeprefix(prefix)} {_ago(event.at, now)}" if event else "-"


def _ago(at: float, now: float) -> str:
    return f"{(now - at) / 3600:.1f}h ago" if now - at >= 3600 else f"{(now - at) / 60:.0f}m ago"


class SnapshotCache:
    """The snapshot, taken again only when the loop has recorded a pass since (its saved
    state changed) or after `max_age` seconds (incidents and the outbox move between
    passes); concurrent readers wait for one taker."""

    def __init__(
        self,
        journal_path: Path,
        state_file: Path,
        loaded: Callable[[], LoadedFleet | None],
        max_age: float = 30.0,
    ) -> None:
        self.journal_path, self.state_file, self.loaded = journal_path, state_file, loaded
        self.max_age = max_age
        self.lock = threading.Lock()
        self.key: float | None = None
        self.snapshot: Snapshot | None = None
        self.taken = 0  # how many times it was taken (the tests count)

    def current(self) -> Snapshot:
        with self.lock:
            journal = Journal(self.journal_path)
            try:
                found = journal.loop_state(str(self.state_file))
                key = found[0] if found else None
                snap = self.snapshot
                fresh = snap is not None and time.time() - snap.taken < self.max_age
                if snap is None or key != self.key or not fresh:
                    snap, self.key = take(journal, self.state_file, self.loaded()), key
                    self.snapshot = snap
                    self.taken += 1
                return snap
            finally:
                journal.close()
