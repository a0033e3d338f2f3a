"""`backups:`: backup policies, their retention and their copies."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from state.spec.base import Spec
from state.types import (
    AbsPath,
    CalendarSpec,
    Count,
    Delay,
    Duration,
    Name,
    SecretRef,
    UnitLine,
)
from state.url_types import (
    CopyRepositoryUrl,
    RepositoryUrl,
)


class Retention(Spec):
    """Which snapshots `forget` keeps (restic's --keep-* flags)."""

    keep_within: Duration | None = Field(None, description="Keep all within.", examples=["30d"])
    keep_last: Count | None = Field(None, description="Keep the last N.")
    keep_hourly: Count | None = Field(None, description="Keep N hourly.")
    keep_daily: Count | None = Field(None, description="Keep N daily.", examples=[30])
    keep_weekly: Count | None = Field(None, description="Keep N weekly.")
    keep_monthly: Count | None = Field(None, description="Keep N monthly.")


class BackupCopy(Spec):
    """A further repository of a policy's snapshots: the controller copies every recorded
    snapshot there with `restic copy` (no host holds its password or reaches it), and a
    restore or rebuild uses it when the policy's repository is lost."""

    repository: CopyRepositoryUrl = Field(
        description="Where the copy is: local:/path on the controller's disk, an sftp: "
        "fleet host other than the policy's host and its repository's host (when the "
        "policy's repository is not itself on sftp), rest: or s3:.",
        examples=["local:/var/lib/fleet-reconciler/copies/kimi"],
    )
    password: SecretRef = Field(
        description="The copy's own password reference (never deployed to a host).",
        examples=["env:OFFSITE_PASSWORD"],
    )
    every: Duration = Field(
        timedelta(days=1),
        description="`reconcile watch` copies new recorded snapshots this often; an apply "
        "copies when the copy is older than its RPO.",
        examples=["1d", "7d"],
    )
    rpo: Duration = Field(
        description="How old the copy's newest snapshot may be before it is drift.",
        examples=["8d"],
    )
    retention: Retention | None = Field(
        None, description="What forget keeps in the copy; unset, the policy's retention."
    )
    init: bool = Field(False, description="Initialise the copy if it is missing.")
    check_every: Duration = Field(
        timedelta(days=1),
        description="`reconcile watch` runs `restic check` on a rotating seventh of the copy.",
    )
    drill_every: Duration = Field(
        timedelta(days=30), description="`reconcile watch` runs a restore drill of the copy."
    )


class BackupPolicy(Spec):
    """One data set on one host, backed up with restic."""

    host: Name = Field(description="Host whose data is backed up.", examples=["kimi"])
    paths: list[AbsPath] = Field(default_factory=list, description="Plain paths.")
    excludes: list[UnitLine] = Field(default_factory=list, description="restic --exclude patterns.")
    max_file_age: Duration | None = Field(
        None,
        description="Only files changed within this age (the runbook's 'logs, last 7 days').",
        examples=["7d"],
    )
    sqlite: list[AbsPath] = Field(
        default_factory=list, description="SQLite databases, copied consistently first."
    )
    git: list[AbsPath] = Field(default_factory=list, description="Git repositories, bundled.")
    schedule: CalendarSpec = Field(
        description="systemd OnCalendar= expression.", examples=["daily", "hourly"]
    )
    randomized_delay: Delay = Field(
        timedelta(minutes=5),
        description="RandomizedDelaySec= of the timer; 0s for none.",
        examples=["5m"],
    )
    retention: Retention = Field(description="What forget keeps.")
    rpo: Duration = Field(description="Recovery point objective.", examples=["1h"])
    repository: RepositoryUrl = Field(
        description="restic repository: an absolute path on the policy's host, "
        "sftp:[USER@]HOST:/path (HOST a fleet host or an address), rest:http(s)://... or "
        "s3:HOST/BUCKET[/PATH].",
        examples=["sftp:root@hermes:/srv/restic/kimi"],
    )
    password: SecretRef = Field(description="Repository password reference.")
    init: bool = Field(False, description="Initialise the repository if it is missing.")
    restore: Literal["rebuild", "never"] = Field(
        "rebuild",
        description="When the host comes back blank (every data path missing): `rebuild` "
        "restores the newest recorded snapshot, verified, before the host's services start; "
        "`never` (caches) lets them start without it. Shown in the plan either way.",
    )
    check_every: Duration = Field(
        timedelta(days=1),
        description="`reconcile watch` runs `restic check` on a rotating seventh of the data "
        "this often, so every pack is read over a week.",
    )
    drill_every: Duration = Field(
        timedelta(days=30),
        description="`reconcile watch` runs a restore drill this often (the runbook's monthly "
        "DR test).",
    )

    copies: dict[Name, BackupCopy] = Field(
        default_factory=dict,
        description="Further repositories filled from this one (the 3-2-1 rule), by name.",
        examples=[
            {
                "offsite": {
                    "repository": "local:/srv/copies/kimi",
                    "password": "env:OFFSITE_PASSWORD",
                    "rpo": "8d",
                }
            }
        ],
    )

    @property
    def data_paths(self) -> list[str]:
        """Every path whose data the policy backs up: databases, repositories, paths."""
        return [*self.sqlite, *self.git, *self.paths]

    @model_validator(mode="after")
    def _has_data(self) -> BackupPolicy:
        if not (self.paths or self.sqlite or self.git):
            raise ValueError("expected at least one of 'paths', 'sqlite' or 'git'")
        return self
