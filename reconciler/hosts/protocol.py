"""The SSH worker protocol: typed requests, answers and work items, shared by both sides.

The parent writes each `Request` as one line of JSON to the worker's stdin and reads
one line of answer from its stdout. Both sides validate with these models, so a field renamed on one
side fails loudly on the other instead of travelling as a stray dict key.
Import-light: pydantic only (the CLI imports it before the worker has started).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from state.placement_record import HOME, Placement


class Message(BaseModel):
    """Base of protocol messages: unknown keys are errors on either side."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SshTarget(Message):
    """How to reach one host: its name and pyinfra host data (see state.ssh)."""

    name: str
    data: dict[str, Any]

    def inventory_data(self) -> dict[str, Any]:
        return {**self.data, "ssh_connect_retries": 0}


class Timeouts(Message):
    """Time limits of one SSH cycle, in seconds."""

    connect: float = 5.0
    command: float = 20.0


# -- observation ------------------------------------------------------------------------
class SnapshotRequest(Message):
    """What to read on one host: units, files (stat + sha256), contents, packages."""

    units: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    contents: list[str] = Field(default_factory=list)
    packages: list[str] = Field(default_factory=list)
    unit_files: bool = Field(
        True, description="Also read each unit's file and drop-ins (not in a probe pass)."
    )
    present: list[str] = Field(
        default_factory=list, description="Paths whose existence alone is read (backup data)."
    )


class UnitState(Message):
    """One systemd unit as `systemctl show` reports it, plus its unit file."""

    active: str = Field(description="ActiveState: active, inactive, failed, ...")
    sub: str = Field(description="SubState: running, dead, ...")
    enabled: str = Field(description="UnitFileState: enabled, disabled, not-found, ...")
    since: str = Field("", description="ActiveEnterTimestamp.")
    file: str | None = Field(None, description="Content of /etc/systemd/system/NAME.service.")
    dropins: list[str] = Field(
        default_factory=list, description="Files in /etc/systemd/system/NAME.service.d/."
    )
    file_cut: str | None = Field(
        None, description="'SIZE SHA256' of a unit file too large to read; `file` is then None."
    )
    withheld_size: int | None = Field(
        None, description="A review withheld the unit file: its size alone (None: not withheld)."
    )


class FileState(Message):
    """One file's metadata; content only for small files whose diff we may show."""

    mode: str
    owner: str
    group: str
    size: int
    mtime: int
    sha256: str
    content: str | None = None
    withheld: bool = Field(
        False, description="A review withheld its content and hash: `size` alone is said."
    )


class Snapshot(Message):
    """What `HostSnapshot` read on one host; `complete` is False when output was cut short."""

    now: int | None = None
    units: dict[str, UnitState] = Field(default_factory=dict)
    files: dict[str, FileState | None] = Field(default_factory=dict)
    packages: dict[str, str] = Field(default_factory=dict)
    present: dict[str, bool] = Field(default_factory=dict)
    complete: bool = False


class ObserveRequest(Message):
    op: Literal["observe"] = "observe"
    targets: list[SshTarget]
    reads: dict[str, SnapshotRequest]
    timeouts: Timeouts
    whole_fleet: bool = Field(
        False, description="Targets are every host: a kept connection to any other is closed."
    )


class HostObservation(Message):
    """One host's answer: a snapshot, or why there is none."""

    reachable: bool
    snapshot: Snapshot | None = None
    error: str | None = None
    seconds: float = 0.0


class ObserveAnswer(Message):
    hosts: dict[str, HostObservation]


# -- apply ------------------------------------------------------------------------------
class NamedWork(Message):
    """Work on one named service or backup policy."""

    name: str


class ServiceWork(NamedWork):
    """Converge one service (`deploys.service`); `restart` forces a restart (unhealthy)."""

    kind: Literal["service"] = "service"
    restart: bool = False
    stale: list[str] = Field(default_factory=list)
    """Its files (config files, the unit file) the plan found missing or different:
    written without being read again first."""
    start: bool = True
    """False: staged, everything but the start (a promotion deploys the failover
    services while their data is restored, and starts them once it is)."""


class BackupPolicyWork(NamedWork):
    """Converge one backup policy's files, units and timer (`deploys.backup`)."""

    kind: Literal["backup"] = "backup"


class BackupNowWork(NamedWork):
    """Run one backup policy's unit now and wait for it."""

    kind: Literal["backup_now"] = "backup_now"


class RepoAccessWork(Message):
    """Authorise the fleet's backup key on a host that holds repositories."""

    kind: Literal["repo_access"] = "repo_access"


class RemoveServiceWork(NamedWork):
    """Stop, disable and remove the unit of a service the spec no longer names."""

    kind: Literal["service_remove"] = "service_remove"


class RemoveBackupWork(NamedWork):
    """Remove the timer, units, script and env file of a policy the spec no longer names."""

    kind: Literal["backup_remove"] = "backup_remove"


class RecordWork(Message):
    """Write the host's record of what the reconciler manages there."""

    kind: Literal["record"] = "record"
    services: list[str]
    backups: list[str]


WorkItem = Annotated[
    ServiceWork
    | BackupPolicyWork
    | BackupNowWork
    | RepoAccessWork
    | RemoveServiceWork
    | RemoveBackupWork
    | RecordWork,
    Field(discriminator="kind"),
]
Work = dict[str, list[WorkItem]]


class BackupKeyPair(Message):
    private: str
    public: str


class ApplyRequest(Message):
    """Deploy `work` per host. `state_text`, `templates` and `placement` are exactly what
    was planned: the worker parses and places these, never the file on disk, which may
    have changed since."""

    op: Literal["apply"] = "apply"
    targets: list[SshTarget]
    state_file: str
    state_text: str
    templates: dict[str, str] = Field(default_factory=dict)
    root: str | None = Field(None, description="The git commit's tree its files lie in.")
    placement: Placement = HOME
    work: Work
    backup_passwords: dict[str, str] = Field(default_factory=dict)
    backup_keys: dict[str, BackupKeyPair] = Field(
        default_factory=dict, description="Per policy, its key to its repository host."
    )
    legacy_backup_public: str | None = None
    backup_known_hosts: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts


OpStatus = Literal["changed", "ok", "error", "skipped"]


class OpResult(Message):
    """One pyinfra operation on one host."""

    name: str
    status: OpStatus
    stderr: str = ""


class HostApplyAnswer(Message):
    connected: bool
    error: str | None = None
    ops: list[OpResult] = Field(default_factory=list)


class ApplyAnswer(Message):
    hosts: dict[str, HostApplyAnswer]
    seconds: float = 0.0


class StartRequest(Message):
    """Start stopped units, nothing else: the fast path for pure "start" drift (a unit
    stopped by hand, its files and unit unchanged), without a pyinfra deploy cycle."""

    op: Literal["start"] = "start"
    targets: list[SshTarget]
    units: dict[str, list[str]] = Field(description="Per host, service names to start.")
    timeouts: Timeouts


class ClaimRequest(Message):
    """Claim the leader's fencing token on each target (state.fence), over the kept SSH
    connections: a host refuses a token lower than the highest it has seen."""

    op: Literal["claim"] = "claim"
    targets: list[SshTarget]
    token: int
    controller: str
    timeouts: Timeouts


Request = Annotated[
    ObserveRequest | ApplyRequest | StartRequest | ClaimRequest, Field(discriminator="op")
]


class RequestEnvelope(Message):
    """One JSON document, one line, on the worker's stdin; the answer is one line too."""

    request: Request
