"""A fleet's plan, composed once for every caller: `plan_for` (placement, the journal's
confirmations and ledger, observation, diff, plan) for dry run, review, apply, watch and
status; and `dry_run`, the read-only plan rendered as `reconcile --dry-run` prints it and
a pull request's comment holds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from reconciler.engine.plan import Plan, plan_to_json
from reconciler.flows.failover_outlook import outlook as failover_outlook
from reconciler.flows.once import plan_once
from reconciler.hosts.client import WarmWorker, WorkerProcess
from reconciler.hosts.observation import FleetState
from reconciler.hosts.observe import ObserveSettings
from reconciler.hosts.review_scope import ReviewScope, review_scope
from reconciler.render.backup_text import standings
from reconciler.render.failover_text import failover_json, render_failover
from reconciler.render.plan_text import render_plan
from reconciler.store.confirmations import Confirmations
from reconciler.store.failover_state import placed
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from reconciler.untrusted.http import bounded_client
from state.load import LoadedFleet

Memory = Literal["keep", "cache", "read"]
"""What planning writes to the journal. `keep` (an apply, a pass of watch): the snapshots
a repository confirmed, and the ledger's record of what it lists. `cache` (a dry run):
confirmations only. `read` (status, a review): nothing; the ledger is read."""


@dataclass(frozen=True)
class Planned:
    loaded: LoadedFleet
    """The fleet as planned: the failover services where the failover store puts them."""
    observed: FleetState
    plan: Plan
    ledger: Ledger | None


def plan_for(
    loaded: LoadedFleet,
    journal: Journal | None,
    client: httpx.Client,
    worker: WarmWorker | WorkerProcess | None,
    memory: Memory,
    targets: Sequence[str] = (),
    fresh_data: bool = False,
    settings: ObserveSettings | None = None,
    on_ledger: Callable[[Ledger], object] | None = None,
) -> Planned:
    """Observe and plan `loaded`, placed as the journal says. `on_ledger` runs after the
    observation, whether planning finished or raised (forged snapshots are announced
    even then)."""
    if journal is not None:
        loaded = placed(loaded, journal)
    keeps = journal is not None and memory != "read"
    confirmations = Confirmations(journal) if keeps and journal is not None else None
    ledger = Ledger(journal) if journal is not None else None
    try:
        result = plan_once(
            loaded,
            client,
            settings=settings,
            worker=worker,
            targets=tuple(targets),
            confirmations=confirmations,
            ledger=ledger,
            record=memory == "keep",
            fresh_data=fresh_data,
        )
    finally:
        if on_ledger is not None and ledger is not None:
            on_ledger(ledger)
    return Planned(loaded, result.observed, result.plan, ledger)


@dataclass(frozen=True)
class DryRun:
    plan: Plan
    observed: FleetState
    text: str
    """As `--dry-run` prints it: the failover review, the plan, the backup standings."""
    document: dict[str, Any]
    """As `--dry-run --output json` prints it."""

    @property
    def unreachable(self) -> list[str]:
        return sorted(n for n, h in self.observed.hosts.items() if h.contacted and not h.reachable)


@dataclass(frozen=True)
class Authority:
    """A review's authority: the commit in force (None: none is in force yet), whose
    hosts and checks alone the review may contact (reconciler.hosts.review_scope)."""

    base: LoadedFleet | None


def dry_run(
    loaded: LoadedFleet,
    journal: Journal | None,
    worker: WarmWorker,
    targets: list[str] | None = None,
    fresh_data: bool = False,
    review: Authority | None = None,
) -> DryRun:
    """Plan `loaded` without changing anything: the journal (when readable) is read, never
    written. With `review`, `loaded` is a stranger's proposal: only what the commit in
    force allows is contacted, run and shown, and no host key is trusted on first use."""
    base = review.base if review is not None else None
    if journal is not None:  # as plan_for places it: the review's scope sees the same
        loaded = placed(loaded, journal)
        base = placed(base, journal) if base is not None else None
    scope = review_scope(base.fleet if base else None, loaded.fleet) if review else None
    # A review remembers nothing: confirmations are written when a listing finds more.
    memory: Memory = "cache" if review is None else "read"
    with bounded_client() as client:
        result = plan_for(
            loaded,
            journal,
            client,
            worker,
            memory,
            targets or [],
            fresh_data,
            ObserveSettings(review=scope),
        )
        loaded, ledger = result.loaded, result.ledger
        sighted = loaded if review is None else (base if scope and scope.failover else None)
        failover = failover_outlook(sighted, journal, client, result.observed) if sighted else None
    document = plan_to_json(result.plan)
    text = ""
    if scope is not None:
        text += review_header(base, scope, loaded)
        document["review"] = {
            "base": base.label if base else None,
            "withheld": [line.strip() for line in scope.withheld_lines(loaded.fleet)],
        }
    if failover is not None and loaded.written.failover is not None:
        document["failover"] = failover_json(loaded.written.failover, *failover)
        text += render_failover(loaded.written.failover, *failover) + "\n"
    text += render_plan(result.plan)
    if ledger is not None:
        text += standings(loaded, ledger, time.time(), result.observed)
    return DryRun(result.plan, result.observed, text, document)


def review_header(base: LoadedFleet | None, scope: ReviewScope, proposal: LoadedFleet) -> str:
    """The lines that open a review: whose authority it ran with and what it left alone."""
    authority = base.label if base is not None else "no commit in force (nothing contacted)"
    lines = [f"Review with the authority of {authority}"]
    withheld = scope.withheld_lines(proposal.fleet)
    if withheld:
        lines.append("Left alone (the commit in force does not allow it):")
        lines.extend(withheld)
    return "\n".join(lines) + "\n\n"
