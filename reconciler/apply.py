"""Apply a plan: deploys, then the health gate, then models, then verification.

The only module that changes hosts. It executes what the plan lists and nothing
more: only services with planned actions are deployed, only listed models are pulled
or deleted. Each host fails alone, with a reason; the others carry on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from deploys.ollama import ModelError, delete_model, pull_model
from reconciler.changes import Change, Phase
from reconciler.observe import ObserveSettings, worker_request
from reconciler.observed import FleetState
from reconciler.plan import Plan
from reconciler.probes import list_models
from reconciler.worker import run_worker
from state.load import LoadedFleet

Report = Callable[[str], None]
ProgressReport = Callable[[str, int, int], None]
Observe = Callable[[], FleetState]
HEALTH_POLL_S = 1.0


@dataclass
class HostOutcome:
    """What happened on one host: operations changed, the failure (if any), and time spent."""

    name: str
    changed: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    results: list[dict[str, Any]] = field(default_factory=list)


def deploy_request(loaded: LoadedFleet, plan: Plan, settings: ObserveSettings) -> dict[str, Any]:
    """The worker request for every service with install, file, unit or runtime actions."""
    services: dict[str, list[str]] = {}
    restart: dict[str, list[str]] = {}
    for action in plan.actions:
        if action.service is None or action.phase in (Phase.HOST, Phase.MODELS):
            continue
        if action.phase == Phase.HEALTH and action.kind != "restart":
            continue
        names = services.setdefault(action.host, [])
        if action.service not in names:
            names.append(action.service)
        if action.phase == Phase.HEALTH:
            restart.setdefault(action.host, []).append(action.service)
    base = worker_request(loaded.fleet, settings)
    return {
        "op": "apply",
        "targets": base["targets"],
        "state_file": str(loaded.file),
        "state_text": loaded.file.read_text(encoding="utf-8"),
        "services": services,
        "restart": restart,
        "connect_timeout": settings.connect_timeout,
        "command_timeout": settings.command_timeout,
    }


def run_service_deploys(
    loaded: LoadedFleet, plan: Plan, settings: ObserveSettings, report: Report
) -> dict[str, HostOutcome]:
    request = deploy_request(loaded, plan, settings)
    outcomes = {h: HostOutcome(h) for h in request["services"]}
    if not outcomes:
        return outcomes
    for host, names in request["services"].items():
        report(f"{host}: deploying {', '.join(names)}")
    started = time.monotonic()
    answer = run_worker(request, timeout=600.0)
    for host, result in answer["hosts"].items():
        outcome = outcomes[host]
        outcome.results = result["ops"]
        outcome.changed = [op["name"] for op in result["ops"] if op["status"] == "changed"]
        outcome.error = result["error"]
        outcome.seconds = time.monotonic() - started
        report(
            f"{host}: {len(outcome.changed)} operations changed"
            + (f"; FAILED: {outcome.error}" if outcome.error else "")
        )
    return outcomes


def health_gate(
    loaded: LoadedFleet,
    services: dict[str, list[str]],
    observe: Observe,
    report: Report,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, str]:
    """Wait until every listed service is healthy, each up to its RTO.

    Returns {host: reason} for hosts with a service that never became healthy; the
    reason names the service, the check and its last answer.
    """
    fleet = loaded.fleet
    pending = {(h, s) for h, names in services.items() for s in names if fleet.services[s].health}
    start = clock()
    deadlines = {key: start + fleet.services[key[1]].rto.total_seconds() for key in pending}
    failed: dict[str, str] = {}
    while pending:
        observed = observe()
        for host, name in sorted(pending):
            results = observed.health.get(name, ())
            sick = [r for r in results if not r.healthy]
            if results and not sick:
                report(f"{host}: {name} healthy after {clock() - start:.1f}s")
                pending.discard((host, name))
            elif clock() >= deadlines[(host, name)]:
                last = "; ".join(f"{r.check}: {r.detail}" for r in sick) or "host not observed"
                rto = fleet.services[name].rto.total_seconds()
                failed[host] = f"{name} not healthy within its RTO ({rto:g}s): {last}"
                report(f"{host}: FAILED health gate: {failed[host]}")
                pending = {p for p in pending if p[0] != host}
        if pending:
            sleep(HEALTH_POLL_S)
    return failed


def apply_models(
    loaded: LoadedFleet,
    changes: list[Change],
    client: httpx.Client,
    report: Report,
    progress: ProgressReport,
) -> list[tuple[Change, str | None]]:
    """Pull or delete each planned model; return each change with its error, or None."""
    results: list[tuple[Change, str | None]] = []
    for change in changes:
        assert change.service is not None
        model_set = next(m for m in loaded.fleet.models if m.service == change.service)
        endpoint = model_set.endpoint.format(address=loaded.fleet.hosts[change.host].address)
        model = change.subject.removeprefix("model ")
        if change.kind == "model_pull" and model in list_models(client, endpoint).present:
            report(f"{change.host}: {model} already present")  # planned while the service was down
            results.append((change, None))
            continue
        try:
            if change.kind == "model_pull":

                def on_progress(done: int, total: int, _status: str, m: str = model) -> None:
                    progress(m, done, total)

                pull_model(client, endpoint, model, on_progress)
            else:
                delete_model(client, endpoint, model)
        except ModelError as exc:
            report(f"{change.host}: FAILED {exc}")
            results.append((change, str(exc)))
            continue
        report(f"{change.host}: {change.kind.removeprefix('model_')} {model} done")
        results.append((change, None))
    return results
