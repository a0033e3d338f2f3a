"""One reconcile pass: observe, diff, plan (and, later, apply). Returns data, prints nothing.

`plan_once` is the dry-run stage boundary: it builds the whole plan and stops, as
pyinfra's CLI stops before `run_ops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from reconciler.diff import diff
from reconciler.observe import ObserveSettings, observe
from reconciler.observed import FleetState
from reconciler.plan import Plan, make_plan
from reconciler.worker import WorkerProcess
from state.load import LoadedFleet


@dataclass(frozen=True)
class PlanResult:
    observed: FleetState
    plan: Plan


def plan_once(
    loaded: LoadedFleet,
    client: httpx.Client,
    settings: ObserveSettings | None = None,
    worker: WorkerProcess | None = None,
) -> PlanResult:
    """Observe the fleet and plan what would converge it. Changes nothing."""
    observed = observe(loaded, client, settings, worker)
    return PlanResult(observed, make_plan(loaded, observed, diff(loaded, observed)))
