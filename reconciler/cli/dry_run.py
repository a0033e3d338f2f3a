"""A read-only plan of a fleet, rendered as `reconcile --dry-run` shows it: what a
review on the command line prints and what a pull request's comment holds."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from reconciler.engine.plan import Plan
from reconciler.observe.observation import FleetState
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
        return sorted(n for n, h in self.observed.hosts.items() if not h.reachable)


def dry_run(
    loaded: LoadedFleet,
    journal: Journal | None,
    worker: WarmWorker,
    targets: list[str] | None = None,
    fresh_data: bool = False,
) -> DryRun:
    """Plan `loaded` without changing anything: the journal (when readable) is read, never
    written."""
    from reconciler.bounded_http import bounded_client
    from reconciler.cli.backup_text import standings
    from reconciler.cli.failover_text import failover_json, render_failover
    from reconciler.cli.plan_text import render_plan
    from reconciler.engine.plan import plan_to_json
    from reconciler.run.failover import placed, review
    from reconciler.run.once import plan_once
    from reconciler.store.confirmations import Confirmations
    from reconciler.store.ledger import Ledger

    confirmations = Confirmations(journal) if journal is not None else None
    ledger = Ledger(journal) if journal is not None else None  # read, never written
    if journal is not None:
        loaded = placed(loaded, journal)
    with bounded_client() as client:
        result = plan_once(
            loaded,
            client,
            worker=worker,
            targets=targets or [],
            confirmations=confirmations,
            ledger=ledger,
            record=False,
            fresh_data=fresh_data,
        )
        failover = review(loaded, journal, client, result.observed)
    document = plan_to_json(result.plan)
    text = ""
    if failover is not None and loaded.written.failover is not None:
        document["failover"] = failover_json(loaded.written.failover, *failover)
        text += render_failover(loaded.written.failover, *failover) + "\n"
    text += render_plan(result.plan)
    if ledger is not None:
        text += standings(loaded, ledger, time.time(), result.observed)
    return DryRun(result.plan, result.observed, text, document)
