"""The observed state of a fleet, as typed data.

Observation produces these; `diff` consumes them. An unreachable or slow host is a
value here (`reachable=False, error=...`), never an exception.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from reconciler.hosts.protocol import FileState, UnitState

__all__ = [
    "BackupState",
    "CheckResult",
    "FileState",
    "FleetState",
    "HostState",
    "ModelsState",
    "SnapshotClaim",
    "UnitState",
]


class Observed(BaseModel):
    """Base of observed data: unknown keys are errors, so a parser bug fails loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckResult(Observed):
    """One health check's outcome."""

    check: str = Field(description="A short label, e.g. 'http http://198.18.0.12:3000/...'.")
    healthy: bool
    detail: str = Field(description="What was seen: status and body excerpt, or the error.")


class ModelsState(Observed):
    """Models an Ollama endpoint lists, or why it could not be asked."""

    endpoint: str
    present: tuple[str, ...] = ()
    error: str | None = None


class SnapshotClaim(Observed):
    """A snapshot as the repository lists it: everything but its ID is what the host that
    wrote it claims (its host name, tags and time), so nothing here is trusted as is."""

    id: str
    host: str
    time: datetime
    tags: tuple[str, ...] = ()


class BackupState(Observed):
    """A backup policy's snapshots, as the controller sees them in the repository."""

    last_snapshot: datetime | None = Field(None, description="Time of the newest snapshot.")
    snapshots: int = 0
    error: str | None = Field(None, description="Why the repository could not be read.")
    missing_repository: bool = Field(False, description="No repository at that location.")
    newest_id: str | None = Field(None, description="ID of the newest snapshot.")
    listed: bool = Field(
        True, description="Read from the repository now (False: a confirmation reused)."
    )
    claims: tuple[SnapshotClaim, ...] = Field(
        (), description="Every snapshot of the policy's tag the repository listed, oldest first."
    )


class HostState(Observed):
    """Everything observed on one host."""

    name: str
    reachable: bool
    error: str | None = None
    now: int | None = Field(None, description="The host's clock (epoch seconds).")
    units: dict[str, UnitState] = Field(default_factory=dict)
    files: dict[str, FileState | None] = Field(default_factory=dict)
    packages: dict[str, str] = Field(default_factory=dict, description="name -> dpkg status")
    present: dict[str, bool] = Field(
        default_factory=dict, description="Whether each backup data path exists."
    )
    seconds: float = Field(0.0, description="How long observing the host took.")
    contacted: bool = Field(
        True, description="False: a review left the host alone (`error` says why)."
    )


class FleetState(Observed):
    """Everything observed: hosts, health checks per service, models per Ollama service."""

    hosts: dict[str, HostState]
    health: dict[str, tuple[CheckResult, ...]] = Field(default_factory=dict)
    models: dict[str, ModelsState] = Field(default_factory=dict)
    backups: dict[str, BackupState] = Field(default_factory=dict)
    observed_at: datetime | None = Field(None, description="When the controller observed.")
