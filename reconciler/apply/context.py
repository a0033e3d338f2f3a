"""What a run needs (`Runner`: the client, the journal, where progress goes, the guard)
and what every step of one run under way is given (`RunContext`: that, its id, its
targets), as one value instead of nine parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import httpx

from reconciler.hosts.client import WarmWorker
from reconciler.hosts.observe import ObserveSettings
from reconciler.store.journal import Journal

Report = Callable[[str], None]
ProgressReport = Callable[[str, int, int], None]


def no_progress(_model: str, _done: int, _total: int) -> None:
    """A ProgressReport that shows nothing (no terminal, the daemon)."""


@dataclass(frozen=True)
class Runner:
    """What a run needs besides the plan: where it is journaled and reported."""

    client: httpx.Client
    journal: Journal
    report: Report
    progress: ProgressReport = no_progress
    settings: ObserveSettings = field(default_factory=ObserveSettings)
    guard: Callable[[list[str]], None] | None = None
    """Called with the hosts about to change, before anything changes; raises to stop
    (leadership lost, or a host refused the fencing token)."""
    ssh: WarmWorker | None = None  # kept SSH connections; None starts a worker per step
    fresh_data: bool = False  # `--fresh-data`: a blank host's policies are not restored


@dataclass(frozen=True)
class RunContext(Runner):
    """One run under way: its runner, its journal id and the hosts it targets."""

    run_id: str = ""
    targets: tuple[str, ...] = ()

    @classmethod
    def started(cls, runner: Runner, run_id: str, targets: tuple[str, ...]) -> RunContext:
        given = {f.name: getattr(runner, f.name) for f in fields(Runner)}
        return cls(**given, run_id=run_id, targets=targets)

    def record(
        self, host: str, service: str | None, step: str, status: str, detail: str = ""
    ) -> None:
        """Journal one result of this run."""
        self.journal.record(self.run_id, host, service, step, status, detail)
