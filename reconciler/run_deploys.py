"""Run the `deploys.service` deploy for chosen services on chosen hosts (worker side).

Only imported inside `reconciler.ssh_worker`, after gevent's monkey patching. Returns
plain data: per host, each operation with its outcome, plus why a host failed.
A host that fails to connect, prepare or execute fails alone; the others carry on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.api.operations import run_ops
from pyinfra.api.state import State

from deploys.backup import backup_now, backup_policy, repository_host
from deploys.service import service
from reconciler.pyinfra_session import SshTarget, open_session
from state.load import LoadedFleet, parse_fleet


def run_deploys(request: dict[str, Any]) -> dict[str, Any]:
    """Request: targets, state_file, state_text, work by host, backup secrets, timeouts."""
    logging.getLogger("pyinfra").setLevel(logging.WARNING)
    loaded = parse_fleet(request["state_text"], Path(request["state_file"]))
    work: dict[str, list[dict[str, Any]]] = request["work"]
    targets = [SshTarget(**t) for t in request["targets"] if t["name"] in work]
    secrets = Secrets(request.get("backup_passwords", {}), request.get("backup_key"))
    started = time.monotonic()

    with open_session(targets, request["connect_timeout"]) as session:
        answer: dict[str, Any] = {
            name: {"connected": False, "error": f"unreachable: {error}", "ops": []}
            for name, error in session.errors.items()
        }
        # Prepared one host after another: concurrent add_deploy calls in greenlets
        # corrupted pyinfra's context here ("type object 'State' has no attribute 'config'").
        prepared = {
            name: _prepare(session.state, host, loaded, work[name], secrets)
            for name, host in session.hosts.items()
        }
        failed = {h for n, h in session.hosts.items() if prepared[n] is not None}
        run_error = _run(session.state, failed)
        for name, host in session.hosts.items():
            error = prepared[name]
            ops = _op_results(session.state, host, [_label(i) for i in work[name]])
            answer[name] = {"connected": True, "error": error, "ops": ops}
            if error is None and host in session.state.failed_hosts:
                failures = [o for o in answer[name]["ops"] if o["status"] == "error"]
                answer[name]["error"] = (
                    f"{failures[0]['name']}: {failures[0]['stderr']}"
                    if failures
                    else run_error or "failed"
                )
    return {"hosts": answer, "seconds": time.monotonic() - started}


@dataclass(frozen=True)
class Secrets:
    passwords: dict[str, str]
    key: dict[str, str] | None


def _label(item: dict[str, Any]) -> str:
    """How an item's operations are named: `NAME: ...` for services, `backup NAME: ...`."""
    if item["kind"] == "service":
        return f"{item['name']}"
    if item["kind"] == "repo_access":
        return "backup key authorized"
    return f"backup {item['name']}"


def _prepare(
    state: State,
    host: PyinfraHost,
    loaded: LoadedFleet,
    items: list[dict[str, Any]],
    secrets: Secrets,
) -> str | None:
    """Add the deploys for one host's work items; an error fails this host only."""
    try:
        for item in items:
            _add(state, host, loaded, item, secrets)
    except Exception as exc:  # reported as this host's failure, the others carry on
        return f"error: {type(exc).__name__}: {exc}"
    return None


def _add(
    state: State, host: PyinfraHost, loaded: LoadedFleet, item: dict[str, Any], secrets: Secrets
) -> None:
    kind = item["kind"]
    if kind == "service":
        add_deploy(state, service, loaded, item["name"], item["restart"], host=host)
    elif kind == "backup":
        private = secrets.key["private"] if secrets.key else None
        add_deploy(
            state,
            backup_policy,
            loaded.fleet,
            item["name"],
            secrets.passwords[item["name"]],
            private,
            host=host,
        )
    elif kind == "backup_now":
        add_deploy(state, backup_now, item["name"], host=host)
    elif kind == "repo_access" and secrets.key is not None:
        add_deploy(state, repository_host, secrets.key["public"], host=host)


def _run(state: State, failed_in_prepare: set[PyinfraHost]) -> str | None:
    try:
        if failed_in_prepare:
            state.fail_hosts(failed_in_prepare)  # type: ignore[no-untyped-call]
        run_ops(state)
    except PyinfraError as exc:  # "No hosts remaining!": every host already has its reason
        return str(exc)
    return None


def _op_results(state: State, host: PyinfraHost, services: list[str]) -> list[dict[str, Any]]:
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
        name = ", ".join(sorted(mine or names))
        if not meta.is_complete():
            status, stderr = "skipped", ""
        elif meta.did_error():
            status, stderr = "error", "\n".join(meta.stderr_lines[-5:])
        else:
            status, stderr = ("changed" if meta.did_change() else "ok"), ""
        results.append({"name": name, "status": status, "stderr": stderr})
    return results
