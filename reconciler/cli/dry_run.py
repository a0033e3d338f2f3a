"""A read-only plan of a fleet, rendered as `reconcile --dry-run` shows it: what a
review on the command line prints and what a pull request's comment holds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from reconciler.engine.plan import Plan
from reconciler.observe.fleet import ObserveSettings
from reconciler.observe.observation import FleetState
from reconciler.observe.review_scope import ReviewScope, review_scope
from reconciler.ssh.client import WarmWorker
from reconciler.store.journal import Journal
from state.load import LoadedFleet


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
    hosts and checks alone the review may contact (reconciler.observe.review_scope)."""

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
    from reconciler.bounded_http import bounded_client
    from reconciler.cli.backup_text import standings
    from reconciler.cli.failover_text import failover_json, render_failover
    from reconciler.cli.plan_text import render_plan
    from reconciler.engine.plan import plan_to_json
    from reconciler.run.failover import review as failover_review
    from reconciler.run.mover import placed
    from reconciler.run.once import plan_once
    from reconciler.store.confirmations import Confirmations
    from reconciler.store.ledger import Ledger

    # A review remembers nothing: confirmations are written when a listing finds more.
    confirmations = Confirmations(journal) if journal is not None and review is None else None
    ledger = Ledger(journal) if journal is not None else None  # read, never written
    base = review.base if review is not None else None
    if journal is not None:
        loaded = placed(loaded, journal)
        base = placed(base, journal) if base is not None else None
    scope = review_scope(base.fleet if base else None, loaded.fleet) if review else None
    sighted = loaded if review is None else (base if scope and scope.failover else None)
    with bounded_client() as client:
        result = plan_once(
            loaded,
            client,
            settings=ObserveSettings(review=scope),
            worker=worker,
            targets=targets or [],
            confirmations=confirmations,
            ledger=ledger,
            record=False,
            fresh_data=fresh_data,
        )
        failover = failover_review(sighted, journal, client, result.observed) if sighted else None
    document = plan_to_json(result.plan)
    text = ""
    if scope is not None:
        text += review_header(base, scope, loaded)
        document["review"] = {
            "base": base.shown if base else None,
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
    authority = base.shown if base is not None else "no commit in force (nothing contacted)"
    lines = [f"Review with the authority of {authority}"]
    withheld = scope.withheld_lines(proposal.fleet)
    if withheld:
        lines.append("Left alone (the commit in force does not allow it):")
        lines.extend(withheld)
    return "\n".join(lines) + "\n\n"
