"""What every failover move shares: the `Mover` (the fleet, its journal and its
reporters), `MoveFailed`, the journal of its steps, and the test failpoints."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from reconciler.apply.context import ProgressReport, Report, no_progress
from reconciler.errors import PermanentError
from reconciler.events.bus import EventBus
from reconciler.store.failover_state import FailoverStore
from reconciler.store.journal import Journal
from state.load import LoadedFleet
from state.spec.failover import Failover

BACKUP_TIMEOUT_S = 3600.0


FAILPOINT_ENV = "FLEET_RECONCILER_FAILPOINT"


def failpoint(name: str) -> None:
    """Die here, as a crash or SIGKILL would, when FLEET_RECONCILER_FAILPOINT names this
    step: how the crash-point tests stop a move at each step. Unset, it does nothing."""
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class MoveFailed(PermanentError, RuntimeError):
    """A move could not go ahead; it was rolled back and the services stay where they were."""


@dataclass(frozen=True)
class Mover:
    """What a move needs: the fleet as written, where it is journaled, and reported."""

    loaded: LoadedFleet
    journal: Journal
    client: httpx.Client
    bus: EventBus
    report: Report
    progress: ProgressReport = no_progress
    guard: Callable[[list[str]], None] | None = None  # leadership and fencing token

    @property
    def failover(self) -> Failover:
        failover = self.loaded.written.failover
        assert failover is not None
        return failover

    @property
    def store(self) -> FailoverStore:
        return FailoverStore(self.journal, self.failover)


def journal_step(
    mover: Mover, run_id: str, host: str, step: str, ok: bool, detail: str = ""
) -> None:
    mover.journal.record(run_id, host, None, step, "ok" if ok else "error", detail)
    mover.report(f"{host}: {step}: {'ok' if ok else detail}")
