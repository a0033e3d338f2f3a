"""Run the deploys for chosen work items on chosen hosts (worker side).

Only imported inside `reconciler.hosts.worker`, after gevent's monkey patching. Returns
typed data: per host, each operation with its outcome, plus why a host failed.
A host that fails to connect, prepare or execute fails alone; the others carry on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gevent
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.api.operations import run_ops
from pyinfra.api.state import State
from pyinfra.context import ctx_state

from deploys.backup import (
    backup_now,
    backup_policy,
    remove_backup_policy,
    repository_entries,
    repository_host,
)
from deploys.record import managed_record
from deploys.service import remove_service, service
from reconciler.hosts.protocol import (
    ApplyAnswer,
    ApplyRequest,
    BackupNowWork,
    BackupPolicyWork,
    HostApplyAnswer,
    OpResult,
    OpStatus,
    RecordWork,
    RemoveBackupWork,
    RemoveServiceWork,
    RepoAccessWork,
    ServiceWork,
    WorkItem,
)
from reconciler.hosts.session import KeptConnections, open_session
from reconciler.untrusted.text import shown
from state.load import LoadedFleet, parse_fleet
from state.managed import Managed


def run_deploys(request: ApplyRequest, kept: KeptConnections | None = None) -> ApplyAnswer:
    """Deploy `request.work` on its hosts, from exactly the planned state text; a fresh
    pyinfra State every time, over `kept` SSH connections when given."""
    logging.getLogger("pyinfra").setLevel(logging.WARNING)
    root = Path(request.root) if request.root else None
    loaded = parse_fleet(request.state_text, Path(request.state_file), request.templates, root)
    loaded = loaded.placed(request.placement)
    targets = [t for t in request.targets if t.name in request.work]
    started = time.monotonic()

    with open_session(targets, request.timeouts.connect, kept) as session:
        answer = {
            name: HostApplyAnswer(connected=False, error=f"unreachable: {error}")
            for name, error in session.errors.items()
        }
        prepared = _prepare_all(session.state, session.hosts, loaded, request)
        failed = {h for n, h in session.hosts.items() if prepared[n] is not None}
        run_error = _run(session.state, failed)
        for name, host in session.hosts.items():
            ops = _op_results(session.state, host, [_label(i) for i in request.work[name]])
            error = prepared[name]
            if error is None and host in session.state.failed_hosts:
                failures = [o for o in ops if o.status == "error"]
                error = (
                    f"{failures[0].name}: {failures[0].stderr}"
                    if failures
                    else run_error or "failed"
                )
            answer[name] = HostApplyAnswer(connected=True, error=error, ops=ops)
    return ApplyAnswer(hosts=answer, seconds=time.monotonic() - started)


def _label(item: WorkItem) -> str:
    """How an item's operations are named: `NAME: ...` for services, `backup NAME: ...`."""
    if isinstance(item, ServiceWork | RemoveServiceWork):
        return item.name
    if isinstance(item, RepoAccessWork):
        return "backup key authorized"
    if isinstance(item, RecordWork):
        return "managed record"
    return f"backup {item.name}"


def _prepare_all(
    state: State, hosts: dict[str, PyinfraHost], loaded: LoadedFleet, request: ApplyRequest
) -> dict[str, str | None]:
    """Prepare every host at once, one greenlet each, as pyinfra's CLI does; facts are
    gathered on all hosts in parallel. pyinfra's host context is greenlet-local, but its
    state context is one global that `add_deploy` sets and then restores: set here for
    the whole stage, each greenlet's set-and-restore is a no-op instead of unsetting it
    under the others ("type object 'State' has no attribute 'config'")."""
    with ctx_state.use(state):
        jobs = {
            name: gevent.spawn(_prepare, state, host, loaded, request.work[name], request)
            for name, host in hosts.items()
        }
        gevent.joinall(list(jobs.values()))
    return {name: job.value for name, job in jobs.items()}


def _prepare(
    state: State,
    host: PyinfraHost,
    loaded: LoadedFleet,
    items: list[WorkItem],
    request: ApplyRequest,
) -> str | None:
    """Add the deploys for one host's work items; an error fails this host only."""
    try:
        for item in items:
            _add(state, host, loaded, item, request)
    except Exception as exc:  # reported as this host's failure, the others carry on
        return f"error: {type(exc).__name__}: {exc}"
    return None


def _add(
    state: State, host: PyinfraHost, loaded: LoadedFleet, item: WorkItem, request: ApplyRequest
) -> None:
    if isinstance(item, ServiceWork):
        stale = frozenset(item.stale)
        add_deploy(state, service, loaded, item.name, item.restart, stale, item.start, host=host)
    elif isinstance(item, BackupPolicyWork):
        password = request.backup_passwords[item.name]
        pair = request.backup_keys.get(item.name)
        private = pair.private if pair else None
        known_hosts = request.backup_known_hosts.get(item.name)
        add_deploy(
            state, backup_policy, loaded.fleet, item.name, password, private, known_hosts, host=host
        )
    elif isinstance(item, BackupNowWork):
        add_deploy(state, backup_now, item.name, host=host)
    elif isinstance(item, RemoveServiceWork):
        add_deploy(state, remove_service, item.name, host=host)
    elif isinstance(item, RemoveBackupWork):
        add_deploy(state, remove_backup_policy, item.name, host=host)
    elif isinstance(item, RecordWork):
        managed = Managed(frozenset(item.services), frozenset(item.backups))
        add_deploy(state, managed_record, managed, host=host)
    else:  # RepoAccessWork
        publics = {name: pair.public for name, pair in request.backup_keys.items()}
        entries = repository_entries(loaded.fleet, host.name, publics)
        add_deploy(state, repository_host, entries, request.legacy_backup_public, host=host)


def _run(state: State, failed_in_prepare: set[PyinfraHost]) -> str | None:
    try:
        if failed_in_prepare:
            state.fail_hosts(failed_in_prepare)  # type: ignore[no-untyped-call]
        run_ops(state)
    except PyinfraError as exc:  # "No hosts remaining!": every host already has its reason
        return str(exc)
    return None


def _op_results(state: State, host: PyinfraHost, services: list[str]) -> list[OpResult]:
    """Per-operation outcome on `host`. Operations from one call site share a hash across
    hosts, so their name set is filtered to this host's services."""
    results = []
    for op_hash in state.get_op_order():  # type: ignore[no-untyped-call]
        if op_hash not in state.ops[host]:
            continue
        meta = state.get_op_data_for_host(host, op_hash).operation_meta
        names = state.get_op_meta(op_hash).names
        mine = [
            n for n in names if any(f"| {svc}: " in n or n.endswith(f"| {svc}") for svc in services)
        ]
        status: OpStatus
        stderr = ""
        if not meta.is_complete():
            status = "skipped"
        elif meta.did_error():
            status, stderr = "error", shown("\n".join(meta.stderr_lines[-5:])[-2000:])
        else:
            status = "changed" if meta.did_change() else "ok"
        results.append(
            OpResult(name=", ".join(sorted(mine or names)), status=status, stderr=stderr)
        )
    return results
