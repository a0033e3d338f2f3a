"""Deploys through the SSH worker: which work a plan implies, and running it.

Executes what the plan lists and nothing more: only services with planned actions are
deployed. Each host fails alone, with a reason; the others carry on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from reconciler.apply.context import Report
from reconciler.engine.changes import Phase
from reconciler.engine.plan import Plan
from reconciler.hosts.client import WarmWorker, run_worker
from reconciler.hosts.observe import ssh_targets
from reconciler.hosts.protocol import (
    ApplyAnswer,
    ApplyRequest,
    BackupKeyPair,
    BackupNowWork,
    BackupPolicyWork,
    OpResult,
    RecordWork,
    RemoveBackupWork,
    RemoveServiceWork,
    RepoAccessWork,
    ServiceWork,
    StartRequest,
    Timeouts,
    Work,
    WorkItem,
)
from state.layout import backup_policy_of, unit_path
from state.load import LoadedFleet
from state.managed import Managed, managed_by_spec
from state.placement import guard_service
from state.repository import resolve_repository

DEPLOY_TIMEOUT_S = 600.0


@dataclass
class HostOutcome:
    """What happened on one host: operations changed, the failure (if any), and time spent."""

    name: str
    changed: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    results: list[OpResult] = field(default_factory=list)

    def merge(self, other: HostOutcome) -> None:
        """Add what another step did on the same host; the first failure stays the reason."""
        self.changed += other.changed
        self.results += other.results
        self.error = self.error or other.error
        self.seconds = max(self.seconds, other.seconds)


@dataclass(frozen=True)
class BackupSecrets:
    """What backup deploys need from the controller: passwords, each policy's key to its
    repository host, and the fleet-wide key of earlier versions (to revoke it)."""

    passwords: dict[str, str]
    keys: dict[str, BackupKeyPair]
    known_hosts: dict[str, str] = field(default_factory=dict)
    legacy_public: str | None = None


def deploy_work(loaded: LoadedFleet, plan: Plan) -> Work:
    """Per host, what the deploy cycle converges: services, backup policies, repo access."""
    work: Work = {}
    stale = _stale_files(loaded, plan)

    def add(host: str, item: WorkItem) -> None:
        items = work.setdefault(host, [])
        if item not in items:
            items.append(item)

    for action in plan.actions:
        if action.service is None or action.phase in (Phase.HOST, Phase.MODELS):
            continue
        policy = backup_policy_of(action.service)
        if action.kind == "service_remove":
            add(action.host, RemoveServiceWork(name=action.service))
        elif action.kind == "backup_remove" and policy is not None:
            add(action.host, RemoveBackupWork(name=policy))
        elif policy is not None:
            if action.kind in {"repo_missing", "repo_init"}:
                continue
            add(action.host, BackupPolicyWork(name=policy))
            target = resolve_repository(loaded.fleet, loaded.fleet.backups[policy])
            if target.sftp_host is not None and target.sftp_host != action.host:
                add(target.sftp_host, RepoAccessWork())
        elif action.phase != Phase.HEALTH or action.kind == "restart":
            restart = action.phase == Phase.HEALTH
            paths = stale.get((action.host, action.service), [])
            add(action.host, ServiceWork(name=action.service, restart=restart, stale=paths))
    for host, items in work.items():  # a service planned for a restart is deployed once
        restarted = {i.name for i in items if isinstance(i, ServiceWork) and i.restart}
        items[:] = [
            i
            for i in items
            if not (isinstance(i, ServiceWork) and not i.restart and i.name in restarted)
        ]
        # The failover guard first: the guarded units' ExecStartPre= runs its script.
        items.sort(key=lambda i: not (isinstance(i, ServiceWork) and i.name == guard_service(host)))
        items[:] = _recorded(loaded, host, items)
    return work


def staged(work: Work, held: list[str]) -> Work:
    """`work` with the services in `held` deployed but not started (ServiceWork.start)."""
    return {
        host: [
            i.model_copy(update={"start": False})
            if isinstance(i, ServiceWork) and i.name in held
            else i
            for i in items
        ]
        for host, items in work.items()
    }


def _stale_files(loaded: LoadedFleet, plan: Plan) -> dict[tuple[str, str], list[str]]:
    """Per (host, service), the config and unit files the plan found missing or
    different: the deploy writes them without reading them first."""
    stale: dict[tuple[str, str], list[str]] = {}
    for action in plan.actions:
        service = loaded.fleet.services.get(action.service or "")
        if service is None or action.service is None:
            continue
        if action.kind == "config":
            configs = {f"file {c.path}": c.path for c in service.config_files}
            path = configs.get(action.subject)
        else:
            path = unit_path(action.service) if action.kind == "unit_file" else None
        if path is not None:
            stale.setdefault((action.host, action.service), []).append(path)
    return {key: sorted(set(paths)) for key, paths in stale.items()}


def _recorded(loaded: LoadedFleet, host: str, items: list[WorkItem]) -> list[WorkItem]:
    """`items` between two writes of the host's record: first everything that may exist
    there (the spec's and what is being removed), last only the spec's. A run cut short
    before its removals finish leaves them recorded, so the next run removes them.
    With nothing to remove, both writes are the same, so there is only the first."""
    spec = managed_by_spec(loaded.fleet, host)
    going = Managed(
        frozenset(i.name for i in items if isinstance(i, RemoveServiceWork)),
        frozenset(i.name for i in items if isinstance(i, RemoveBackupWork)),
    )

    def record(managed: Managed) -> RecordWork:
        return RecordWork(services=sorted(managed.services), backups=sorted(managed.backups))

    if not going.services and not going.backups:  # nothing leaves: one write is the same
        return [record(spec), *items]
    return [record(spec | going), *items, record(spec)]


def backup_now_work(plan: Plan) -> Work:
    """Per host, the backup units the plan says to run now (their RPO is breached)."""
    work: Work = {}
    for action in plan.actions:
        policy = backup_policy_of(action.service)
        if action.kind == "backup_now" and policy is not None:
            work.setdefault(action.host, []).append(BackupNowWork(name=policy))
    return work


def describe_work(items: list[WorkItem]) -> str:
    names = []
    for item in items:
        if isinstance(item, RecordWork):
            continue
        if isinstance(item, RepoAccessWork):
            names.append("backup repository access")
        elif isinstance(item, ServiceWork):
            names.append(item.name)
        elif isinstance(item, RemoveServiceWork):
            names.append(f"removal of {item.name}")
        elif isinstance(item, RemoveBackupWork):
            names.append(f"removal of backup {item.name}")
        else:
            names.append(f"{item.kind.replace('_', ' ')} {item.name}")
    return ", ".join(names)


def apply_request(
    loaded: LoadedFleet, work: Work, timeouts: Timeouts, secrets: BackupSecrets | None
) -> ApplyRequest:
    """The worker request for `work`, carrying the exact text that was planned."""
    return ApplyRequest(
        targets=ssh_targets(loaded.fleet),
        state_file=str(loaded.file),
        state_text=loaded.text,
        templates=dict(loaded.templates),
        root=str(loaded.root) if loaded.root else None,
        placement=loaded.placement,
        work=work,
        backup_passwords=secrets.passwords if secrets else {},
        backup_keys=secrets.keys if secrets else {},
        legacy_backup_public=secrets.legacy_public if secrets else None,
        backup_known_hosts=secrets.known_hosts if secrets else {},
        timeouts=timeouts,
    )


def run_deploys(
    loaded: LoadedFleet,
    work: Work,
    timeouts: Timeouts,
    report: Report,
    secrets: BackupSecrets | None = None,
    ssh: WarmWorker | None = None,
) -> dict[str, HostOutcome]:
    """One worker cycle running `work`; per host, what changed and why it failed."""
    if not work:
        return {}
    for host, items in work.items():
        verb = "running" if isinstance(items[0], BackupNowWork) else "deploying"
        report(f"{host}: {verb} {describe_work(items)}")
    request = apply_request(loaded, work, timeouts, secrets)
    return _outcomes(list(work), request, report, ssh)


def start_units(
    loaded: LoadedFleet,
    starts: dict[str, list[str]],
    timeouts: Timeouts,
    report: Report,
    ssh: WarmWorker | None = None,
) -> dict[str, HostOutcome]:
    """The fast path for pure start drift: `systemctl start` per stopped unit (see
    engine.plan.pure_starts); per host, what changed and why it failed."""
    if not starts:
        return {}
    for host, services in starts.items():
        report(f"{host}: starting {', '.join(services)} (stopped; nothing else changed)")
    request = StartRequest(targets=ssh_targets(loaded.fleet), units=starts, timeouts=timeouts)
    return _outcomes(list(starts), request, report, ssh)


def _outcomes(
    hosts: list[str], request: ApplyRequest | StartRequest, report: Report, ssh: WarmWorker | None
) -> dict[str, HostOutcome]:
    outcomes = {h: HostOutcome(h) for h in hosts}
    started = time.monotonic()
    answer = run_worker(request, ApplyAnswer, DEPLOY_TIMEOUT_S, ssh)
    for host, result in answer.hosts.items():
        outcome = outcomes[host]
        outcome.results = result.ops
        outcome.changed = [op.name for op in result.ops if op.status == "changed"]
        outcome.error = result.error
        outcome.seconds = time.monotonic() - started
        report(
            f"{host}: {len(outcome.changed)} operations changed"
            + (f"; FAILED: {outcome.error}" if outcome.error else "")
        )
    return outcomes
