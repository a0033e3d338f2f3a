"""The failover pass: sight the primary (with the backup's second opinion), keep the
leases, page, and promote when the grace is over (reconciler.flows.moves does the move).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx

from reconciler.apply.context import Report
from reconciler.engine.failover_detection import (
    Alarm,
    Sighting,
    Verdict,
    alarm,
    assess,
)
from reconciler.events.bus import Event
from reconciler.flows.failover_outlook import second_opinion
from reconciler.flows.mover import MoveFailed, Mover
from reconciler.flows.moves import promote, resume, switchover
from reconciler.hosts.commands import set_lease
from reconciler.hosts.observation import FleetState
from reconciler.hosts.witness import ask_backup, primary_answers
from reconciler.store.failover_state import FailoverState
from state.load import LoadedFleet
from state.spec.fleet import Fleet


def sight(
    loaded: LoadedFleet,
    client: httpx.Client,
    report: Report,
    state: FailoverState,
    observed: FleetState | None,
    renewal: float | None = None,
) -> Sighting:
    """This pass's view of the pair, renewing the active host's lease (a write: a dry run
    looks with reconciler.flows.failover_outlook instead); a returning fenced primary is
    told the epoch."""
    fleet = loaded.written
    failover = fleet.failover
    assert failover is not None
    epoch = state.placement.epoch
    active = state.placement.active or failover.primary
    primary = fleet.hosts[failover.primary]
    seconds = int(failover.fence_after.total_seconds())
    if active == failover.primary and state.down_since is not None:
        return _sight_counting(fleet, client, report, epoch, renewal)
    lease = set_lease(fleet.hosts[active], epoch, seconds)
    # Failed over, the primary stays fenced: revoked, and told the epoch.
    reached = set_lease(primary, epoch, 0).ok if active != failover.primary else lease.ok
    if not lease.ok:
        report(f"failover: lease on {active} not renewed: {lease.error}")
    return second_opinion(fleet, client, active, reached, observed, renewal)


def _sight_counting(
    fleet: Fleet, client: httpx.Client, report: Report, epoch: int, renewal: float | None
) -> Sighting:
    """A sighting while the failover clock counts: the primary's lease, its health checks
    and the backup's second opinion asked at once, so that a pass takes one timeout and
    not their sum (the promotion starts within a second of the grace's end, not a
    sighting's worth of timeouts after it)."""
    failover = fleet.failover
    assert failover is not None
    seconds = int(failover.fence_after.total_seconds())
    primary = fleet.hosts[failover.primary]
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="sighting") as pool:
        leased = pool.submit(set_lease, primary, epoch, seconds)
        answered = pool.submit(primary_answers, fleet, client)
        witnessed = pool.submit(ask_backup, fleet)
    lease = leased.result()
    if lease.ok or answered.result():
        return Sighting(primary_reached=True, backup_reached=True)
    report(f"failover: lease on {failover.primary} not renewed: {lease.error}")
    witness = witnessed.result()
    return Sighting(
        False, witness.asked, witness.asked and witness.sees_primary, witness.detail, renewal
    )


def tick(mover: Mover, observed: FleetState | None = None) -> Verdict:
    """One failover pass: finish or roll back a cut-short move, renew the lease, sight,
    assess, act. Call it holding the fleet's lock."""
    store = mover.store
    state = store.get()
    if state.move is not None:
        resume(mover)
        state = store.get()
    renewal = store.last_renewal(mover.failover.primary)
    seen = sight(mover.loaded, mover.client, mover.report, state, observed, renewal)
    verdict = assess(mover.failover, state, seen, time.time())
    paging = alarm(state, verdict, seen)
    if paging is not None:
        verdict = replace(
            verdict, state=verdict.state.model_copy(update={"alarmed": paging == "raise"})
        )
    store.put(verdict.state)
    if paging is not None:
        _page(mover, paging, verdict)
    if verdict.action != "steady" and (verdict.action != "failed_over" or state != verdict.state):
        mover.report(verdict.line)
    if verdict.action == "promote":
        try:
            promote(mover)
        except MoveFailed as exc:
            mover.report(f"failover: {exc}")
    elif verdict.action == "failback":
        try:
            switchover(mover, mover.failover.primary, "automatic failback")
        except MoveFailed as exc:
            mover.report(f"failback: {exc}")
    return verdict


def _page(mover: Mover, paging: Alarm, verdict: Verdict) -> None:
    primary = mover.failover.primary
    if paging == "raise":
        event = Event("P0", "primary_down", verdict.line.removeprefix("! failover "), primary)
    else:
        event = Event("P3", "primary_back", f"{primary} reachable again", primary)
    mover.bus.emit(event)
