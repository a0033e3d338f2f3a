"""What an apply did: each host's outcome, and the plan verification found left over."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.apply.deploys import HostOutcome
from reconciler.engine.plan import Plan
from reconciler.hosts.observation import FleetState


@dataclass
class ApplyResult:
    """Per-host outcomes, and the plan that verification found left over."""

    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    remaining: Plan | None = None
    seconds: float = 0.0
    observed: FleetState | None = None  # what verification saw: the fleet after the apply

    @property
    def converged(self) -> bool:
        failed = any(o.error for o in self.hosts.values())
        return not failed and self.remaining is not None and not self.remaining.summary.pending

    @property
    def errors(self) -> str | None:
        """Every host's failure in one line, or None."""
        joined = "; ".join(f"{h}: {o.error}" for h, o in self.hosts.items() if o.error)
        return joined or None
