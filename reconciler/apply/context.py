"""What every step of one run needs, passed as one value instead of nine parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from reconciler.hosts.client import WarmWorker
from reconciler.hosts.observe import ObserveSettings
from reconciler.store.journal import Journal

Report = Callable[[str], None]
ProgressReport = Callable[[str, int, int], None]


def no_progress(_model: str, _done: int, _total: int) -> None:
    """A ProgressReport that shows nothing (no terminal, the daemon)."""


@dataclass(frozen=True)
class RunContext:
    """One run's collaborators: HTTP client, journal and run id, and where progress goes."""

    client: httpx.Client
    journal: Journal
    run_id: str
    report: Report
    progress: ProgressReport = no_progress
    settings: ObserveSettings = field(default_factory=ObserveSettings)
    targets: tuple[str, ...] = ()
    ssh: WarmWorker | None = None  # kept SSH connections; None starts a worker per step
    fresh_data: bool = False  # `--fresh-data`: a blank host's policies are not restored

    def record(
        self, host: str, service: str | None, step: str, status: str, detail: str = ""
    ) -> None:
        """Journal one result of this run."""
        self.journal.record(self.run_id, host, service, step, status, detail)
