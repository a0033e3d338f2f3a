"""Observe the whole fleet: SSH facts from every host in parallel, plus health probes.

Read-only by contract. SSH work runs in a child process (`reconciler.hosts.worker`);
HTTP and TCP probes run here on threads at the same time. An unreachable or slow
host becomes `HostState(reachable=False)`, and every other host is still observed.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from reconciler.hosts.client import WarmWorker, WorkerProcess, run_worker
from reconciler.hosts.observation import (
    BackupState,
    CheckResult,
    FleetState,
    HostState,
    ModelsState,
)
from reconciler.hosts.probes import (
    evaluate_file_fresh,
    evaluate_systemd,
    list_models,
    probe_http,
    probe_tcp,
)
from reconciler.hosts.protocol import (
    ObserveAnswer,
    ObserveRequest,
    Snapshot,
    SnapshotRequest,
    SshTarget,
    Timeouts,
)
from reconciler.hosts.review_scope import NOT_ASKED, NOT_RUN, ReviewScope, withhold
from reconciler.hosts.snapshots import (
    listing_due,
    observe_backup,
    reported_id,
    reuse_confirmation,
)
from reconciler.store.confirmations import Confirmation, Confirmations
from reconciler.store.ledger import Ledger
from reconciler.untrusted.text import shown
from state.layout import (
    MANAGED_RECORD,
    backup_path,
    backup_unit,
    unit_path,
)
from state.load import LoadedFleet
from state.spec.fleet import Fleet
from state.spec.services import (
    AptInstall,
    FileFreshCheck,
    FileInstall,
    HttpCheck,
    ModelSet,
    Service,
    SystemdCheck,
    TcpCheck,
)
from state.ssh import pyinfra_host_data


@dataclass(frozen=True)
class ObserveSettings:
    """Time limits for one observation, and how much to read."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    health_only: bool = False  # only what health checks need (the watch loop's probe pass)
    hosts: frozenset[str] | None = None
    """Only these hosts and what runs on them (a heal, a gate, `--target`); None: all."""
    review: ReviewScope | None = None
    """A review: only what the commit in force allows is contacted, run and shown."""

    def scope(self, fleet: Fleet) -> set[str]:
        """The names of the hosts of `fleet` this observation reads."""
        scope = set(fleet.hosts) if self.hosts is None else set(fleet.hosts) & self.hosts
        return scope if self.review is None else scope & self.review.contacted


def snapshot_requests(fleet: Fleet, health_only: bool = False) -> dict[str, SnapshotRequest]:
    """What to read on each host: units, files (contents for config files), packages.

    With `health_only`, just the units of systemd checks and the files of file_fresh checks.
    """
    requests: dict[str, dict[str, list[str]]] = {
        name: {"units": [], "files": [], "contents": [], "packages": [], "present": []}
        for name in fleet.hosts
    }
    if not health_only:
        for wanted in requests.values():
            wanted["files"].append(MANAGED_RECORD)
            wanted["contents"].append(MANAGED_RECORD)
        for name, policy in fleet.backups.items():
            _backup_reads(name, requests[policy.host])
            requests[policy.host]["present"] += policy.data_paths
    for name, service in fleet.services.items():
        wanted = requests[service.host]
        if health_only:
            _health_reads(name, service, wanted)
            continue
        if service.unit is not None:
            wanted["units"].append(name)
        for config in service.config_files:
            wanted["files"].append(config.path)
            wanted["contents"].append(config.path)
        if isinstance(service.install, FileInstall):
            wanted["files"].append(service.install.dest)
        if isinstance(service.install, AptInstall):
            wanted["packages"].extend(service.install.packages)
        for check in service.health:
            if isinstance(check, FileFreshCheck):
                wanted["files"].append(check.path)
    return {
        host: SnapshotRequest(
            **{k: sorted(set(v)) for k, v in wanted.items()}, unit_files=not health_only
        )
        for host, wanted in requests.items()
    }


def _backup_reads(name: str, wanted: dict[str, list[str]]) -> None:
    unit = backup_unit(name)
    wanted["units"].append(f"{unit}.timer")
    known_hosts, last = backup_path(name, "known_hosts"), backup_path(name, "last")
    wanted["files"] += [backup_path(name, "env"), backup_path(name, "script"), known_hosts, last]
    wanted["contents"] += [known_hosts, last]
    wanted["contents"].append(backup_path(name, "script"))
    for path in (unit_path(f"{unit}.service"), unit_path(f"{unit}.timer")):
        wanted["files"].append(path)
        wanted["contents"].append(path)


def _health_reads(name: str, service: Service, wanted: dict[str, list[str]]) -> None:
    for check in service.health:
        if isinstance(check, SystemdCheck):
            wanted["units"].append(name)
        elif isinstance(check, FileFreshCheck):
            wanted["files"].append(check.path)


def ssh_targets(
    fleet: Fleet, scope: set[str] | None = None, strict: bool = False
) -> list[SshTarget]:
    """How the SSH worker reaches every host of `fleet` (or of `scope`); with `strict`
    (a review), a host key is never trusted on first use."""
    return [
        SshTarget(
            name=name,
            data=pyinfra_host_data(
                host.model_copy(update={"host_key_policy": "strict"}) if strict else host
            ),
        )
        for name, host in fleet.hosts.items()
        if scope is None or name in scope
    ]


def observe_request(fleet: Fleet, settings: ObserveSettings) -> ObserveRequest:
    scope = settings.scope(fleet)
    reads = snapshot_requests(fleet, settings.health_only)
    return ObserveRequest(
        targets=ssh_targets(fleet, scope, strict=settings.review is not None),
        reads={name: wanted for name, wanted in reads.items() if name in scope},
        timeouts=settings.timeouts,
        # only a full read of every host says which hosts left the fleet (a probe pass
        # may leave a lost primary out, a heal reads its own hosts)
        whole_fleet=not settings.health_only and settings.hosts is None and not settings.review,
    )


def host_states(answer: ObserveAnswer) -> dict[str, HostState]:
    """HostStates from the worker's answer."""
    states = {}
    for name, result in answer.hosts.items():
        snap = result.snapshot or Snapshot()
        states[name] = HostState(
            name=name,
            reachable=result.reachable,
            error=shown(result.error) if result.error is not None else None,
            now=snap.now,
            units=snap.units,
            files=snap.files,
            packages=snap.packages,
            present=snap.present,
            seconds=result.seconds,
        )
    return states


def observe(
    loaded: LoadedFleet,
    client: httpx.Client,
    settings: ObserveSettings | None = None,
    worker: WorkerProcess | WarmWorker | None = None,
    confirmations: Confirmations | None = None,
    ledger: Ledger | None = None,
) -> FleetState:
    """Observe every host and service of `loaded` (those of `settings.hosts` alone, when
    it is set: hosts left out are absent from the answer). Changes nothing anywhere.

    `worker` is an already started SSH worker (see reconciler.hosts.client): a warm one
    keeps its connections for the next call; None starts a one-shot worker. With
    `confirmations`, a backup repository is listed only when its host
    reports a snapshot the repository has not confirmed lately; with `ledger`, also
    when the ledger has not judged the snapshot the host reports.
    """
    settings = settings or ObserveSettings()
    fleet = loaded.fleet
    timeout = settings.timeouts.connect + settings.timeouts.command + 30
    request = observe_request(fleet, settings)
    scope = settings.scope(fleet)
    services = [name for name, service in fleet.services.items() if service.host in scope]
    review = settings.review
    model_sets = [m for m in fleet.models if fleet.services[m.service].host in scope]
    asked = [
        m for m in model_sets if review is None or review.may_ask(_host_of(fleet, m), m.endpoint)
    ]
    policies = [
        name
        for name, policy in fleet.backups.items()
        if not settings.health_only
        and policy.host in scope
        and (review is None or name in review.backups)
    ]
    with ThreadPoolExecutor(max_workers=16) as pool:
        ssh = pool.submit(run_worker, request, ObserveAnswer, timeout, worker)
        remote = _submit_probes(pool, fleet, services, client, review)
        models = {
            m.service: pool.submit(list_models, _endpoint(fleet, m.service, m.endpoint))
            for m in asked
        }
        known = _confirmed(fleet, policies, confirmations)
        listed = _list_due(pool, fleet, policies, known)  # alongside the SSH work
        hosts = host_states(ssh.result())
        backup_states = _backup_states(pool, fleet, known, listed, hosts, ledger)
    health = {name: _service_health(fleet, name, hosts, remote) for name in services}
    model_states = _model_states(fleet, model_sets, asked, models, hosts)
    if review is not None:
        hosts = {**_left_alone(review), **hosts}
    observed = FleetState(
        hosts=hosts,
        health=health,
        models=model_states,
        backups=backup_states,
        observed_at=datetime.now(UTC),
    )
    return observed if review is None else withhold(observed, review)


def _list_due(
    pool: ThreadPoolExecutor,
    fleet: Fleet,
    policies: list[str],
    known: dict[str, Confirmation | None],
) -> dict[str, Future[BackupState]]:
    """Policies with nothing confirmed lately: their repositories are listed at once."""
    now, every = time.time(), fleet.reconciler.interval.total_seconds()
    return {
        name: pool.submit(observe_backup, fleet, name)
        for name in policies
        if listing_due(_confirmed_at(known.get(name)), now, every)
    }


def _backup_states(
    pool: ThreadPoolExecutor,
    fleet: Fleet,
    known: dict[str, Confirmation | None],
    listed: dict[str, Future[BackupState]],
    hosts: dict[str, HostState],
    ledger: Ledger | None,
) -> dict[str, BackupState]:
    """A confirmed snapshot is reused when its host reports it and the ledger judged
    it; any other policy's repository is listed now."""
    listing = dict(listed)
    reused: dict[str, BackupState] = {}
    for name in set(known) - set(listing):
        policy = fleet.backups[name]
        state = reuse_confirmation(
            name, policy.rpo.total_seconds(), known[name], hosts[policy.host], time.time()
        )
        if state is None or not _judged(ledger, fleet, name, hosts[policy.host]):
            listing[name] = pool.submit(observe_backup, fleet, name)
        else:
            reused[name] = state
    return {**reused, **{name: f.result() for name, f in listing.items()}}


def _model_states(
    fleet: Fleet,
    model_sets: list[ModelSet],
    asked: list[ModelSet],
    models: dict[str, Future[ModelsState]],
    hosts: dict[str, HostState],
) -> dict[str, ModelsState]:
    states = {
        name: (
            future.result()
            if hosts[fleet.services[name].host].reachable
            else ModelsState(endpoint=_endpoint(fleet, name, m.endpoint), error="host unreachable")
        )
        for (name, future), m in zip(models.items(), asked, strict=True)
    }
    for m in model_sets:
        if m not in asked:
            states[m.service] = ModelsState(
                endpoint=_endpoint(fleet, m.service, m.endpoint), error=NOT_ASKED
            )
    return states


def _host_of(fleet: Fleet, model_set: ModelSet) -> str:
    return fleet.services[model_set.service].host


def _left_alone(review: ReviewScope) -> dict[str, HostState]:
    """The hosts a review does not contact, as the plan shows them."""
    return {
        name: HostState(
            name=name, reachable=False, contacted=False, error=f"not contacted in a review: {why}"
        )
        for name, why in review.not_contacted.items()
    }


def _confirmed(
    fleet: Fleet, policies: list[str], confirmations: Confirmations | None
) -> dict[str, Confirmation | None]:
    """Each policy's last confirmation by its repository (all None without a store)."""
    return {
        name: confirmations.of_policy(fleet, name) if confirmations is not None else None
        for name in policies
    }


def _confirmed_at(confirmation: Confirmation | None) -> float | None:
    return confirmation.confirmed if confirmation is not None else None


def _judged(ledger: Ledger | None, fleet: Fleet, name: str, host: HostState) -> bool:
    """Whether the snapshot `host` reports for policy `name` is in the ledger already
    (always, without a ledger): an unjudged one needs the repository's listing."""
    if ledger is None:
        return True
    reported = reported_id(host, name)
    return reported is None or ledger.knows(fleet, name, reported)


def _endpoint(fleet: Fleet, service: str, template: str) -> str:
    return template.format(address=fleet.hosts[fleet.services[service].host].address)


def _submit_probes(
    pool: ThreadPoolExecutor,
    fleet: Fleet,
    services: list[str],
    client: httpx.Client,
    review: ReviewScope | None = None,
) -> dict[tuple[str, int], Future[CheckResult]]:
    """The HTTP and TCP checks of `services`, started; in a review, only those the commit
    in force runs on the same host (the others are not run: see `_service_health`)."""
    futures: dict[tuple[str, int], Future[CheckResult]] = {}
    for name in services:
        service = fleet.services[name]
        address = fleet.hosts[service.host].address
        for i, check in enumerate(service.health):
            if (
                review is not None
                and isinstance(check, HttpCheck | TcpCheck)
                and not review.may_probe(service.host, check)
            ):
                continue
            if isinstance(check, HttpCheck):
                futures[(name, i)] = pool.submit(probe_http, client, check, address)
            elif isinstance(check, TcpCheck):
                futures[(name, i)] = pool.submit(probe_tcp, check, address)
    return futures


def _service_health(
    fleet: Fleet,
    name: str,
    hosts: dict[str, HostState],
    remote: dict[tuple[str, int], Future[CheckResult]],
) -> tuple[CheckResult, ...]:
    service = fleet.services[name]
    host = hosts[service.host]
    if not host.reachable:
        return ()
    results = []
    for i, check in enumerate(service.health):
        if isinstance(check, SystemdCheck):
            results.append(evaluate_systemd(check, name, host))
        elif isinstance(check, FileFreshCheck):
            results.append(evaluate_file_fresh(check, host))
        elif (name, i) in remote:
            results.append(remote[(name, i)].result())
        else:  # a review's check the commit in force does not have: not run, not judged
            results.append(CheckResult(check=f"{check.kind} check", healthy=True, detail=NOT_RUN))
    return tuple(results)
