"""The reconciler's error hierarchy.

Each leaf also subclasses the stdlib error it resembles. `TemporaryError` means
"retry with backoff"; `PermanentError` means "stop and report". The CLI is the one
place that turns these into user output and exit codes.
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path


class ReconcileError(Exception):
    """Base of every expected reconciler failure."""


class TemporaryError(ReconcileError):
    """Worth retrying after `delay` seconds (a host or the network may come back)."""

    def __init__(self, message: str, delay: float = 10.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ReconcileError):
    """Retrying will not help until a person changes something."""


class ObserveError(TemporaryError, RuntimeError):
    """Observation as a whole failed (not one host: that is an observed fact)."""


class UsageError(PermanentError, ValueError):
    """Bad command-line arguments: the command cannot be read (exit 64)."""


class Refused(PermanentError, ValueError):
    """A well-formed command that the fleet or the journal cannot honour: an incident or
    a copy that does not exist, a section the state file lacks, an apply cancelled."""


def write_traceback() -> Path:
    """Write the exception being handled to a file; return its path (for one-line reports)."""
    with tempfile.NamedTemporaryFile(
        "w", prefix="reconcile-crash-", suffix=".txt", delete=False
    ) as out:
        traceback.print_exc(file=out)
    return Path(out.name)
