"""The desired state of a fleet, as pydantic models.

Every field is documented here, once. The JSON Schema (`reconcile schema`) and the
spec reference (docs/reference.md) are generated from these descriptions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from state.fence import default_fence_after
from state.types import (
    GIT_BRANCH,
    AbsPath,
    AptPackage,
    CalendarSpec,
    CopyRepositoryUrl,
    Count,
    Delay,
    Duration,
    EnvName,
    FileMode,
    FineDuration,
    GitUrl,
    HostAddress,
    HttpUrl,
    LoginName,
    Name,
    OllamaModelName,
    OwnerRepo,
    Port,
    RepoPath,
    RepositoryUrl,
    SecretRef,
    Sha256,
    SigningKey,
    SourceRef,
    TemplateRef,
    UnitLine,
    UrlTemplate,
    parse_duration,
)

Severity = Literal["P0", "P1", "P2", "P3"]


class Spec(BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Host(Spec):
    """A machine reached over SSH."""

    address: HostAddress = Field(description="IP address or DNS name.", examples=["198.18.0.11"])
    ssh_user: LoginName = Field("root", description="SSH login user.", examples=["root"])
    ssh_port: Port = Field(22, description="SSH port.", examples=[22])
    ssh_key: AbsPath | None = Field(
        None,
        description="Private key file; the SSH agent and default keys are used when unset.",
        examples=["/root/.ssh/id_ed25519"],
    )
    ssh_known_hosts: AbsPath | None = Field(
        None,
        description="known_hosts file the host's key is checked against; unset, the "
        "controller user's ~/.ssh/known_hosts.",
        examples=["/var/cache/fleet-reconciler/demo.known_hosts"],
    )
    host_key_policy: Literal["strict", "trust-on-first-use"] = Field(
        "strict",
        description="'strict': the host's key must already be in the known_hosts file, or "
        "every command refuses the host. 'trust-on-first-use': the first key seen is "
        "written there and trusted from then on (say so only when you mean it).",
        examples=["strict"],
    )
    role: Literal["primary", "backup", "witness", "member"] = Field(
        "member", description="The host's part in failover.", examples=["primary"]
    )
    labels: dict[EnvName, UnitLine] = Field(
        default_factory=dict, description="Free-form labels.", examples=[{"vps": "kimi"}]
    )


class AptInstall(Spec):
    """Install Debian packages with apt."""

    kind: Literal["apt"] = Field(description="Install with apt.", examples=["apt"])
    packages: list[AptPackage] = Field(
        min_length=1, description="Debian package names.", examples=[["git"]]
    )


class FileInstall(Spec):
    """Copy a file or binary from a local path or URL, checked against its sha256."""

    kind: Literal["file"] = Field(description="Copy one file.", examples=["file"])
    source: SourceRef = Field(
        description="Local path (relative to the state file) or http(s) URL.",
        examples=["../tests/standins/http_standins.py"],
    )
    sha256: Sha256 = Field(
        description="Expected sha256 of the file.", examples=["e3b0c442" + "0" * 56]
    )
    dest: AbsPath = Field(
        description="Where the file goes on the host.", examples=["/usr/local/bin/ollama"]
    )
    mode: FileMode = Field("0755", description="File mode.", examples=["0755"])


class NoInstall(Spec):
    """The service needs nothing installed (its binary is already on the host)."""

    kind: Literal["none"] = Field(description="Install nothing.", examples=["none"])


Install = Annotated[AptInstall | FileInstall | NoInstall, Field(discriminator="kind")]

RestartPolicy = Literal[
    "no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"
]


class Unit(Spec):
    """The systemd unit that runs the service; rendered to /etc/systemd/system/NAME.service."""

    description: UnitLine = Field(description="Unit Description=.", examples=["Ollama stand-in"])
    exec_start: UnitLine = Field(
        description="ExecStart= command line.", examples=["/usr/local/bin/ollama serve"]
    )
    user: LoginName = Field("root", description="User= the service runs as.", examples=["root"])
    working_directory: AbsPath | None = Field(
        None, description="WorkingDirectory=.", examples=["/root/allegro"]
    )
    environment: dict[EnvName, UnitLine] = Field(
        default_factory=dict,
        description="Environment= variables. Put no secrets here; use an EnvironmentFile.",
        examples=[{"OLLAMA_HOST": "0.0.0.0:11434"}],
    )
    restart: RestartPolicy = Field(
        "on-failure", description="Restart= policy.", examples=["always"]
    )
    restart_sec: Duration = Field(timedelta(seconds=5), description="RestartSec=.", examples=["5s"])
    enabled: bool = Field(True, description="Enable the unit at boot.", examples=[True])


class ConfigFile(Spec):
    """A file the service reads; exactly one of `content` or `template`."""

    path: AbsPath = Field(description="Path on the host.", examples=["/etc/allegro/agent.toml"])
    content: str | None = Field(None, description="Literal content.", examples=["debug = false\n"])
    template: TemplateRef | None = Field(
        None,
        description="Template file, relative to the state file and inside its directory; "
        "$host, $address and $service are substituted.",
        examples=["templates/agent.toml"],
    )
    mode: FileMode = Field("0644", description="File mode.", examples=["0640"])
    owner: LoginName = Field("root", description="Owning user.", examples=["root"])
    group: LoginName = Field("root", description="Owning group.", examples=["root"])
    sensitive: bool = Field(
        False,
        description="Never show its content: plans, JSON plans, the journal and the "
        "dashboard say only that it changed (as Terraform shows a sensitive value).",
        examples=[True],
    )

    @model_validator(mode="after")
    def _one_source(self) -> ConfigFile:
        if (self.content is None) == (self.template is None):
            raise ValueError("expected exactly one of 'content' or 'template'")
        return self


class HttpCheck(Spec):
    """Healthy when an HTTP GET answers with the expected status (and JSON key)."""

    kind: Literal["http"] = Field(description="HTTP probe.", examples=["http"])
    url: UrlTemplate = Field(
        description="URL probed from the controller; {address} is the host's address.",
        examples=["http://{address}:11434/api/tags"],
    )
    expect_status: Annotated[int, Strict()] = Field(
        200, ge=100, le=599, description="Expected status."
    )
    json_key: UnitLine | None = Field(
        None, description="Top-level JSON key that must be present.", examples=["models"]
    )
    timeout: Duration = Field(timedelta(seconds=2), description="Request timeout.")


class TcpCheck(Spec):
    """Healthy when a TCP connection to the host's port succeeds."""

    kind: Literal["tcp"] = Field(description="TCP connect probe.", examples=["tcp"])
    port: Port = Field(description="Port on the service's host.", examples=[3000])
    timeout: Duration = Field(timedelta(seconds=2), description="Connect timeout.")


class SystemdCheck(Spec):
    """Healthy when the service's unit is active."""

    kind: Literal["systemd"] = Field(description="systemd ActiveState probe.", examples=["systemd"])


class FileFreshCheck(Spec):
    """Healthy when a file was modified recently (the runbook's 'no log entries for 30 minutes')."""

    kind: Literal["file_fresh"] = Field(description="File age probe.", examples=["file_fresh"])
    path: AbsPath = Field(description="File on the host.", examples=["/var/log/heartbeat.log"])
    max_age: Duration = Field(description="Maximum age.", examples=["30m"])


HealthCheck = Annotated[
    HttpCheck | TcpCheck | SystemdCheck | FileFreshCheck, Field(discriminator="kind")
]


class Service(Spec):
    """One service on one host: what to install, its unit, its files and its health."""

    host: Name = Field(description="Name of the host that runs it.", examples=["hermes"])
    install: Install = Field(
        default_factory=lambda: NoInstall(kind="none"), description="How it is installed."
    )
    unit: Unit | None = Field(None, description="Its systemd unit; none for a plain install.")
    config_files: list[ConfigFile] = Field(default_factory=list, description="Its files.")
    health: list[HealthCheck] = Field(default_factory=list, description="Its health checks.")
    rto: Duration = Field(
        timedelta(minutes=15),
        description="Recovery time objective: how long it may take to become healthy.",
        examples=["5m"],
    )
    rpo: Duration | None = Field(
        None,
        description="Recovery point objective of the service's data: `reconcile drill` "
        "checks the newest snapshot of every backup policy on its host against it.",
        examples=["1h"],
    )


class ModelSet(Spec):
    """Ollama models that must be present behind one Ollama service."""

    service: Name = Field(description="The Ollama service.", examples=["ollama"])
    endpoint: UrlTemplate = Field(
        "http://{address}:11434",
        description="Ollama API base URL; {address} is the service host's address.",
    )
    present: list[OllamaModelName] = Field(
        min_length=1, description="Models as name:tag.", examples=[["qwen2.5:1.5b"]]
    )
    prune: bool = Field(False, description="Remove models that are not listed.")


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


DEFAULT_GRACE = timedelta(minutes=5)


class Failover(Spec):
    """Move services, with their data, from the primary to the backup when the primary is
    unreachable; fenced so that two copies never run (see the README's Failover)."""

    primary: Name = Field(description="Host that normally runs the services.", examples=["kimi"])
    backup: Name = Field(description="Host that takes them over.", examples=["hermes"])
    services: list[Name] = Field(
        min_length=1,
        description="Services that move (all on the primary).",
        examples=[["timmy-agent", "timmy-health"]],
    )
    data: list[Name] | None = Field(
        None,
        description="Backup policies restored on the backup when it takes over, and run from "
        "there while failed over; unset, every policy of the primary.",
        examples=[["metrics-db"]],
    )
    grace: Duration = Field(
        DEFAULT_GRACE,
        description="How long the primary must be unreachable, from the controller and from "
        "the backup, before the services move (the runbook's 5 minutes).",
        examples=["5m"],
    )
    fence_after: Duration = Field(
        timedelta(minutes=4),
        description="The primary stops the services by itself when the controller has not "
        "renewed its lease for this long; at least 5s shorter than grace. Unset, it follows "
        "grace: 4/5 of it, and at most grace minus 5s (grace 5m: 4m; grace 20s: 15s).",
        examples=["4m"],
    )
    failback: Literal["manual", "automatic"] = Field(
        "manual",
        description="'manual': the services stay on the backup until `reconcile failback`. "
        "'automatic': they return once the primary has been healthy for failback_after.",
    )
    failback_after: Duration = Field(
        timedelta(minutes=10),
        description="Hold-down before an automatic failback.",
        examples=["10m"],
    )
    data_loss: Literal["hold", "allow"] = Field(
        "hold",
        description="'hold': a promotion that would lose more than a data policy's RPO, "
        "or whose data nothing restores, waits for `reconcile failover --accept-data-loss` "
        "(paged once, retried with backoff). 'allow': it promotes anyway, with what "
        "restores or with no data, and states the loss in its P0.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fence_after_follows_grace(cls, data: Any) -> Any:
        """A default follows what the user wrote: unset, fence_after is derived from the
        grace given (not a fixed 4m that a short grace then refuses)."""
        if not isinstance(data, dict) or "fence_after" in data:
            return data
        try:
            grace = parse_duration(data.get("grace", DEFAULT_GRACE))
        except ValueError:
            return data  # grace's own error is reported
        assert isinstance(grace, timedelta)
        return {**data, "fence_after": default_fence_after(grace)}


DEFAULT_REPEAT: dict[Severity, timedelta] = {
    "P0": timedelta(minutes=30),
    "P1": timedelta(hours=4),
    "P2": timedelta(hours=4),
    "P3": timedelta(hours=4),
}


class TelegramChannel(Spec):
    """A Telegram bot message."""

    kind: Literal["telegram"] = Field(description="Telegram bot API.", examples=["telegram"])
    api_url: HttpUrl = Field("https://api.telegram.org", description="Bot API base URL.")
    token: SecretRef = Field(description="Bot token reference.", examples=["env:TELEGRAM_TOKEN"])
    chat_id: str = Field(
        pattern=r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$",
        description="Chat to post to: its numeric ID (negative for a group) or "
        "@channelusername, as the Bot API takes it.",
        examples=["123456"],
    )


class GiteaIssueChannel(Spec):
    """An issue opened in a Gitea repository."""

    kind: Literal["gitea_issue"] = Field(description="Gitea issue.", examples=["gitea_issue"])
    url: HttpUrl = Field(description="Gitea base URL.", examples=["http://198.18.0.12:3000"])
    repo: OwnerRepo = Field(description="owner/name.", examples=["ops/fleet"])
    token: SecretRef = Field(description="API token reference.", examples=["env:GITEA_TOKEN"])
    labels: list[UnitLine] = Field(
        default_factory=list,
        description="Label names put on the issues (resolved to the repository's label IDs; "
        "names the repository lacks are left out and reported).",
        examples=[["incident"]],
    )


class LogChannel(Spec):
    """A structured log line."""

    kind: Literal["log"] = Field(description="Log line.", examples=["log"])


Channel = Annotated[TelegramChannel | GiteaIssueChannel | LogChannel, Field(discriminator="kind")]


class EscalationLevel(Spec):
    """One level of the escalation matrix (the runbook: father at 5 minutes, grandfather at 30)."""

    after: Duration = Field(
        description="An incident still open (and not acknowledged) this long after it "
        "opened reaches this level.",
        examples=["5m"],
    )
    notify: list[Name] = Field(
        min_length=1, description="Channels told when it does.", examples=[["incidents"]]
    )
    severity: Severity | None = Field(
        None,
        description="Raise the incident to this severity (never lowers it).",
        examples=["P0"],
    )
    requested_action: Literal[
        "father_intervention", "grandfather_intervention", "operator_intervention"
    ] = Field(
        "operator_intervention",
        description="The distress signal's requested_action at this level.",
        examples=["father_intervention"],
    )


class Notifications(Spec):
    """Where events of each severity go (the runbook: Telegram for P0, Gitea for P1, log else)."""

    channels: dict[Name, Channel] = Field(description="Named channels.")
    routes: dict[Severity, list[Name]] = Field(
        description="Channel names per severity.", examples=[{"P0": ["telegram"]}]
    )
    repeat_interval: dict[Severity, Duration] = Field(
        default_factory=lambda: dict(DEFAULT_REPEAT),
        description="An open incident is sent again at most this often, per severity "
        "(severities left out keep their default: P0 30m, others 4h).",
        examples=[{"P0": "30m"}],
    )
    escalation: list[EscalationLevel] = Field(
        default_factory=list,
        description="Escalation levels, in order of `after`; `reconcile incidents ack ID` "
        "stops an incident's escalation.",
    )
    distress_dir: AbsPath | None = Field(
        None,
        description="Directory on the controller where each P0/P1 notification is also "
        "written as a distress-signal JSON file, for agents to read; unset, none are written.",
        examples=["/var/lib/fleet-reconciler/distress"],
    )
    agent: UnitLine = Field(
        "fleet-reconciler",
        description="The `agent` field of distress signals (the runbook's format).",
        examples=["allegro"],
    )

    def repeat_for(self, severity: Severity) -> timedelta:
        return self.repeat_interval.get(severity, DEFAULT_REPEAT[severity])


class LocalCoordination(Spec):
    """One controller: its journal and host locks (the default)."""

    kind: Literal["local"] = Field(description="Embedded, nothing to run.", examples=["local"])


class EtcdCoordination(Spec):
    """Several controllers, one leader, elected on etcd (see the README's "Several
    controllers"). Plain HTTP to the endpoints: TLS and etcd auth are not supported yet,
    so keep etcd on loopback or a private network."""

    kind: Literal["etcd"] = Field(description="Leader election on etcd.", examples=["etcd"])
    endpoints: list[HttpUrl] = Field(
        min_length=1,
        description="etcd client URLs (the v3 JSON gateway), tried in turn.",
        examples=[["http://198.18.0.1:2379"]],
    )
    prefix: str = Field(
        "/fleet-reconciler",
        pattern=r"^/[A-Za-z0-9._/-]{1,100}$",
        description="Key prefix of this fleet's leader key and shared state.",
    )
    ttl: Duration = Field(
        timedelta(seconds=15),
        description="Lease of the leader key: a dead leader is replaced after at most this.",
    )
    retry_timeout: Duration = Field(
        timedelta(seconds=5),
        description="Timeout of one etcd call; a leader stops acting once its last renewal "
        "is older than ttl - retry_timeout.",
    )
    shards: int = Field(
        1,
        ge=1,
        le=64,
        strict=True,
        description="Cut the fleet into this many shards, each led by one controller: "
        'the controllers share them out (see the README\'s "Where one controller ends"). '
        "Hosts that act on each other (a failover pair, a backup's host and its sftp "
        "repository and copies) always share a shard. 1: one leader for the whole fleet.",
        examples=[4],
    )


Coordination = Annotated[LocalCoordination | EtcdCoordination, Field(discriminator="kind")]


class ReconcilerSettings(Spec):
    """How `reconcile watch` runs: its timers, self-healing backoff and escalation."""

    interval: Duration = Field(
        timedelta(seconds=60), description="Full reconcile every interval.", examples=["60s"]
    )
    probe_interval: Duration = Field(
        timedelta(seconds=2),
        description="Health-probe pass every probe_interval; drift wakes a reconcile of that host.",
        examples=["2s"],
    )
    debounce: FineDuration = Field(
        timedelta(milliseconds=50),
        description="Quiet time after the last write to the state file before it is read: "
        "an editor's save is a burst of writes (write-rename, truncate-write, several "
        "writes), and 50ms coalesces each into one reload (tests/unit/test_spec_watch.py).",
        examples=["50ms"],
    )
    require_committed: bool = Field(
        False, description="Refuse to apply a state file with uncommitted git changes."
    )
    backoff_initial: Duration = Field(
        timedelta(seconds=10), description="First retry delay after healing a service failed."
    )
    backoff_max: Duration = Field(timedelta(minutes=5), description="Retry delay cap.")
    backoff_reset: Duration = Field(
        timedelta(minutes=10), description="Healthy this long and the backoff starts over."
    )
    escalate_after_attempts: Count = Field(
        3, description="Failed healing attempts before an escalation event."
    )
    escalate_after: Duration = Field(
        timedelta(minutes=5),
        description="Unresolved this long and it escalates (the runbook's Level 1: 0-5 minutes).",
    )
    escalation_severity: Severity = Field("P1", description="Severity of escalation events.")
    drill_every: Duration | None = Field(
        timedelta(days=30),
        description="`reconcile watch` runs the DR drill (`reconcile drill`: it restarts and "
        "stops each service) this often, counted from the last drill or the watch's first "
        "start (the runbook's monthly DR test); unset, never.",
        examples=["30d"],
    )
    journal_retention: Duration = Field(
        timedelta(days=90),
        description="`reconcile watch` deletes the journal's runs, their results and events "
        "older than this, once a day (the newest 100 runs and the newest event of each kind "
        "stay; the snapshot ledger, the failover record, incidents and the loop's state are "
        "never pruned). `reconcile journal prune` does it by hand.",
        examples=["90d"],
    )
    coordination: Coordination = Field(
        default_factory=lambda: LocalCoordination(kind="local"),
        description="How controllers coordinate: `local` (one controller) or `etcd` "
        "(several, one leader).",
    )

    @model_validator(mode="after")
    def _leader_demotes_in_time(self) -> ReconcilerSettings:
        """Patroni's rule: the loop's wait plus two retries fit in the lease."""
        etcd = self.coordination
        if isinstance(etcd, EtcdCoordination):
            need = self.probe_interval + 2 * etcd.retry_timeout
            if need > etcd.ttl:
                raise ValueError(
                    f"coordination.ttl ({etcd.ttl.total_seconds():g}s) must be at least "
                    f"probe_interval + 2 x retry_timeout ({need.total_seconds():g}s), so that "
                    "a leader that cannot renew stops acting before its lease expires"
                )
        return self


class CommitVerification(Spec):
    """Which commits of the source may be applied: those signed by one of `keys`."""

    keys: list[SigningKey] = Field(
        min_length=1,
        description="The signers' public keys: SSH public key lines, or ASCII-armored PGP "
        "public keys. These live in the controller's own state file: a commit cannot add "
        "its own (it may not change `source`).",
    )
    mode: Literal["head", "all"] = Field(
        "all",
        description="`all`: every commit since the one last in force must be signed, not "
        "only the tip (an unsigned commit under a signed merge is refused); `head`: only "
        "the tip, as Argo CD and Flux do. The first fetch, with nothing in force yet, "
        "checks the tip.",
    )


class ReviewPolicy(Spec):
    """Whose pull requests are planned (`source.reviews`). A review runs with the authority
    of the commit in force whoever wrote the pull request; this says whose are planned at
    all. The others get the status `fleet-reconciler/plan` error saying why, and nothing
    is fetched or observed."""

    authors: Literal["writers", "anyone"] = Field(
        "writers",
        description="`writers`: only authors who can write to the repository (Gitea's "
        "collaborator permission: write, admin or owner); `anyone`: every author.",
        examples=["writers"],
    )
    forks: bool = Field(
        False, description="Also plan pull requests whose head is in another repository."
    )


class GitSource(Spec):
    """Where `reconcile watch` fetches the desired state: one branch of a git repository.
    It applies exactly the fetched commit, read from that commit's tree."""

    url: GitUrl = Field(
        description="The repository.", examples=["https://198.18.0.12:3000/ops/fleet.git"]
    )
    branch: str = Field("main", pattern=GIT_BRANCH, description="The branch followed.")
    path: RepoPath = Field(
        "state/fleet.yaml", description="The state file's path in the repository."
    )
    interval: Duration = Field(
        timedelta(minutes=1), description="How often the branch is fetched.", examples=["1m"]
    )
    ssh_key: SecretRef | None = Field(
        None,
        description="ssh:// only: the private key's reference (file:/path).",
        examples=["file:/etc/fleet-reconciler/forge_ed25519"],
    )
    token: SecretRef | None = Field(
        None,
        description="http(s):// only: an access token's reference.",
        examples=["env:GITEA_TOKEN"],
    )
    known_hosts: AbsPath | None = Field(
        None, description="ssh:// only, and needed: the forge's host keys (no trust on first use)."
    )
    webhook_secret: SecretRef | None = Field(
        None,
        description="The secret of Gitea's push webhook (`POST /hooks/gitea` on `--http`): "
        "a delivery signed with it makes `watch` fetch at once; unset, the endpoint "
        "accepts nothing and polling alone fetches.",
        examples=["env:GITEA_WEBHOOK_SECRET"],
    )
    verify: CommitVerification | None = Field(
        None,
        description="Apply only signed commits. Unset, any commit on the branch is applied.",
    )
    reviews: bool | ReviewPolicy = Field(
        False,
        description="Plan each pull request to `branch`, as Atlantis does, on Gitea (`true`: "
        "with the default author policy, only writers' and never forks'): on its "
        "`pull_request` webhook (`POST /hooks/gitea` on `--http`) or `reconcile review PR`, "
        "one comment holds the plan as `--dry-run` renders it (updated in place) and the "
        "head commit gets the status `fleet-reconciler/plan`; a commit `watch` applies gets "
        "`fleet-reconciler/apply`. Needs an http(s) `url` of a Gitea repository "
        "(`.../OWNER/REPO.git`) and `token`.",
    )

    @model_validator(mode="after")
    def _credentials_fit(self) -> GitSource:
        ssh = self.url.startswith("ssh://")
        if self.ssh_key is not None and not ssh:
            raise ValueError("ssh_key: expected only with an ssh:// url")
        if self.token is not None and not self.url.startswith(("https://", "http://")):
            raise ValueError("token: expected only with an http(s):// url")
        if ssh and self.known_hosts is None:
            raise ValueError("known_hosts: expected with an ssh:// url (no trust on first use)")
        if self.reviews:
            if not self.url.startswith(("https://", "http://")) or self.token is None:
                raise ValueError("reviews: expected an http(s) url of Gitea and a token")
            if len(urlsplit(self.url).path.strip("/").split("/")) < 2:
                raise ValueError("reviews: expected the url .../OWNER/REPO.git")
        return self

    @property
    def review_policy(self) -> ReviewPolicy | None:
        """Whose pull requests are planned; None when `reviews` is off."""
        if self.reviews is True:
            return ReviewPolicy()
        return self.reviews or None

    def gitea(self) -> tuple[str, str]:
        """(Gitea's base URL, OWNER/REPO) of the http(s) `url`: what `reviews` talks to."""
        parts = urlsplit(self.url)
        segments = parts.path.strip("/").removesuffix(".git").split("/")
        base = f"{parts.scheme}://{parts.netloc}" + "".join(f"/{s}" for s in segments[:-2])
        return base, "/".join(segments[-2:])


class Fleet(Spec):
    """The whole desired state: one file, in git."""

    version: Literal[1] = Field(description="Spec format version.", examples=[1])
    hosts: dict[Name, Host] = Field(min_length=1, description="Hosts by name.")
    services: dict[Name, Service] = Field(
        default_factory=dict, description="Services by name (also the systemd unit name)."
    )
    models: list[ModelSet] = Field(default_factory=list, description="Ollama models.")
    backups: dict[Name, BackupPolicy] = Field(
        default_factory=dict, description="Backup policies by name."
    )
    failover: Failover | None = Field(
        None, description="Failover of the primary's services to the backup host."
    )
    notifications: Notifications | None = Field(
        None, description="Incidents and where they are sent: channels, routes, escalation."
    )
    reconciler: ReconcilerSettings = Field(
        default_factory=ReconcilerSettings, description="How `reconcile watch` runs."
    )
    source: GitSource | None = Field(
        None, description="Fetch the desired state from git (unset: this file is the state)."
    )
