"""What the watch loop tells the world about itself: `LoopStatus` (what `reconcile
status`, the dashboard and /metrics read from the journal's loop record), and each
service's health as the page shows it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from reconciler.daemon.spec_source import SpecSource
from reconciler.engine.plan import Plan
from reconciler.hosts.observation import FleetState
from reconciler.render.plan_text import render_plan
from state.load import LoadedFleet


@dataclass
class LoopStatus:
    """What `reconcile status` shows about the loop."""

    last_pass: float | None = None
    last_kind: str = ""
    next_full: float | None = None
    next_probe: float | None = None
    passes: int = 0
    spec_error: str | None = None
    backoffs: dict[str, dict[str, float | int]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per service, from the last pass that looked: host, healthy, detail, seen (epoch)."""
    hosts: dict[str, bool] = field(default_factory=dict)  # reachable, at the last look
    pending: list[str] = field(default_factory=list)  # HOST/SERVICE still out of sync
    failed_passes: int = 0
    plan_text: str = ""  # the pending plan, rendered as `--dry-run` renders it

    def record(self, spec: SpecSource, first_start: float) -> dict[str, Any]:
        """The loop record the journal keeps (`Journal.save_loop_state`)."""
        source = spec.source
        return {
            "pid": os.getpid(),
            "last_pass": self.last_pass,
            "last_kind": self.last_kind,
            "next_full": self.next_full,
            "next_probe": self.next_probe,
            "passes": self.passes,
            "spec_error": self.spec_error,
            "spec_commit": spec.loaded.commit if spec.loaded else None,
            "pinned": spec.pinned,
            "branch_tip": spec.branch_tip,
            "held": spec.held,
            "source": f"{source.url} {source.branch}" if source else None,
            "backoffs": self.backoffs,
            "services": self.services,
            "hosts": self.hosts,
            "pending": self.pending,
            "plan_text": self.plan_text,
            "first_start": first_start,
        }

    def show_plan(self, plan: Plan | None) -> None:
        """What is still out of sync (HOST/SERVICE), and the plan as `--dry-run` shows it."""
        actions = plan.actions if plan is not None else []
        self.pending = sorted({f"{a.host}/{a.service or '*'}" for a in actions})
        pending = plan is not None and plan.summary.pending
        self.plan_text = render_plan(plan) if plan is not None and pending else ""

    def remember(self, loaded: LoadedFleet, observed: FleetState, now: float, since: float) -> None:
        """What the dashboard and metrics show of each service's health; `since`: when a
        service never seen healthy counts from (the loop's first start)."""
        seen = services_seen(loaded, observed, now)
        for name, row in seen.items():  # for the alert "unhealthy for longer than its RTO"
            before = self.services.get(name, {}).get("last_healthy", since)
            row["last_healthy"] = row["seen"] if row["healthy"] else before
        self.services.update(seen)
        self.hosts.update({n: h.reachable for n, h in observed.hosts.items()})


def services_seen(
    loaded: LoadedFleet, observed: FleetState, now: float
) -> dict[str, dict[str, Any]]:
    """Each service's health as the page shows it, for the hosts `observed` looked at:
    judged as the gate and `status` judge it (every check passes; a service with no
    checks, such as tools a host needs, has nothing that can fail)."""
    seen = {}
    for name, service in loaded.fleet.services.items():
        host = observed.hosts.get(service.host)
        if host is None:
            continue  # a pass that did not look at this host
        results = observed.health.get(name, ())
        seen[name] = {
            "host": service.host,
            "healthy": host.reachable and all(r.healthy for r in results),
            "detail": "; ".join(r.detail for r in results if not r.healthy)
            if host.reachable
            else f"{service.host} unreachable",
            "seen": now,
        }
    return seen
