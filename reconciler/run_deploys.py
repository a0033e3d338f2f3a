"""Run the `deploys.service` deploy for chosen services on chosen hosts (worker side).

Only imported inside `reconciler.ssh_worker`, after gevent's monkey patching. Returns
plain data: per host, each operation with its outcome, plus why a host failed.
A host that fails to connect, prepare or execute fails alone; the others carry on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.api.operations import run_ops
from pyinfra.api.state import State

from deploys.service import service
from reconciler.pyinfra_session import SshTarget, open_session
from state.load import LoadedFleet, parse_fleet


def run_deploys(request: dict[str, Any]) -> dict[str, Any]:
    """Request: targets, state_file, state_text, services and restart by host, timeouts."""
    logging.getLogger("pyinfra").setLevel(logging.WARNING)
    loaded = parse_fleet(request["state_text"], Path(request["state_file"]))
    services: dict[str, list[str]] = request["services"]
    restart: dict[str, list[str]] = request.get("restart", {})
    targets = [SshTarget(**t) for t in request["targets"] if t["name"] in services]
    started = time.monotonic()

    with open_session(targets, request["connect_timeout"]) as session:
        answer: dict[str, Any] = {
            name: {"connected": False, "error": f"unreachable: {error}", "ops": []}
            for name, error in session.errors.items()
        }
        # Prepared one host after another: concurrent add_deploy calls in greenlets
        # corrupted pyinfra's context here ("type object 'State' has no attribute 'config'").
        prepared = {
            name: _prepare(session.state, host, loaded, services[name], restart.get(name, []))
            for name, host in session.hosts.items()
        }
        failed = {h for n, h in session.hosts.items() if prepared[n] is not None}
        run_error = _run(session.state, failed)
        for name, host in session.hosts.items():
            error = prepared[name]
            ops = _op_results(session.state, host, services[name])
            answer[name] = {"connected": True, "error": error, "ops": ops}
            if error is None and host in session.state.failed_hosts:
                failures = [o for o in answer[name]["ops"] if o["status"] == "error"]
                answer[name]["error"] = (
                    f"{failures[0]['name']}: {failures[0]['stderr']}"
                    if failures
                    else run_error or "failed"
                )
    return {"hosts": answer, "seconds": time.monotonic() - started}


def _prepare(
    state: State, host: PyinfraHost, loaded: LoadedFleet, names: list[str], restart: list[str]
) -> str | None:
    """Add the service deploys for one host; an error fails this host only."""
    try:
        for name in names:
            add_deploy(state, service, loaded, name, name in restart, host=host)
    except Exception as exc:  # reported as this host's failure, the others carry on
        return f"error: {type(exc).__name__}: {exc}"
    return None


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
        mine = [n for n in names if any(f"| {svc}: " in n for svc in services)]
        name = ", ".join(sorted(mine or names))
        if not meta.is_complete():
            status, stderr = "skipped", ""
        elif meta.did_error():
            status, stderr = "error", "\n".join(meta.stderr_lines[-5:])
        else:
            status, stderr = ("changed" if meta.did_change() else "ok"), ""
        results.append({"name": name, "status": status, "stderr": stderr})
    return results
