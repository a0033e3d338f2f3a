"""What a failover pass would decide now (its outlook), read-only: for a dry run, a review and
`status`. Nothing here writes: no lease is renewed and nothing is stored (the pass that
keeps the leases is reconciler.flows.failover_pass)."""

from __future__ import annotations

import time

import httpx

from reconciler.engine.failover_detection import Sighting, Verdict, assess
from reconciler.hosts.commands import reachable
from reconciler.hosts.observation import FleetState
from reconciler.hosts.witness import ask_backup, primary_answers
from reconciler.store.failover_state import FailoverState, FailoverStore
from reconciler.store.journal import Journal
from state.load import LoadedFleet
from state.spec.fleet import Fleet


def outlook(
    loaded: LoadedFleet,
    journal: Journal | None,
    client: httpx.Client,
    observed: FleetState | None = None,
) -> tuple[FailoverState, Verdict] | None:
    """What a pass would decide now. `observed`, the plan's observation, saves asking
    the primary again. None without failover."""
    failover = loaded.written.failover
    if failover is None:
        return None
    state = FailoverStore(journal, failover).get() if journal is not None else FailoverState()
    seen = look(loaded, client, state, observed)
    return state, assess(failover, state, seen, time.time())


def look(
    loaded: LoadedFleet, client: httpx.Client, state: FailoverState, observed: FleetState | None
) -> Sighting:
    """The pair as a pass would sight it, from the plan's observation when it has one."""
    fleet = loaded.written
    failover = fleet.failover
    assert failover is not None
    active = state.placement.active or failover.primary
    if observed is not None and failover.primary in observed.hosts:
        reached = observed.hosts[failover.primary].reachable  # the plan just asked it
    else:
        reached = reachable(fleet.hosts[failover.primary]).ok
    return second_opinion(fleet, client, active, reached, observed, None)


def second_opinion(
    fleet: Fleet,
    client: httpx.Client,
    active: str,
    reached: bool,
    observed: FleetState | None,
    renewal: float | None,
) -> Sighting:
    """An active primary that did not answer: its health checks, then the backup's view
    of it (is the primary down, or is the controller cut off?)."""
    failover = fleet.failover
    assert failover is not None
    if not reached and active == failover.primary:
        if observed is not None:
            health = observed.health
            reached = any(r.healthy for name in failover.services for r in health.get(name, ()))
        else:
            reached = primary_answers(fleet, client)
    if reached or active != failover.primary:
        return Sighting(primary_reached=reached, backup_reached=True)
    witness = ask_backup(fleet)
    return Sighting(
        False, witness.asked, witness.asked and witness.sees_primary, witness.detail, renewal
    )
