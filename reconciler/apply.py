"""Apply a plan: deploys, the health gate, models and backups; verification is the caller's.

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
from state.repository import resolve_repository

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


@dataclass(frozen=True)
class BackupSecrets:
    """What backup deploys need from the controller: passwords and the fleet's backup key."""

    passwords: dict[str, str]
    private_key: str
    public_key: str


Work = dict[str, list[dict[str, Any]]]


def deploy_work(loaded: LoadedFleet, plan: Plan) -> Work:
    """Per host, what the deploy cycle converges: services, backup policies, repo access."""
    work: Work = {}

    def add(host: str, item: dict[str, Any]) -> None:
        items = work.setdefault(host, [])
        if item not in items:
            items.append(item)

    for action in plan.actions:
        if action.service is None or action.phase in (Phase.HOST, Phase.MODELS):
            continue
        if action.service.startswith("backup:"):
            name = action.service.removeprefix("backup:")
            if action.kind in {"repo_missing", "repo_init"}:
                continue
            add(action.host, {"kind": "backup", "name": name})
            target = resolve_repository(loaded.fleet, loaded.fleet.backups[name])
            if target.sftp_host is not None and target.sftp_host != action.host:
                add(target.sftp_host, {"kind": "repo_access"})
        elif action.phase != Phase.HEALTH or action.kind == "restart":
            add(
                action.host,
                {
                    "kind": "service",
                    "name": action.service,
                    "restart": action.phase == Phase.HEALTH,
                },
            )
    for items in work.values():  # a service planned for a restart is deployed once, restarting
        restarted = {i["name"] for i in items if i.get("restart")}
        items[:] = [
            i
            for i in items
            if not (i["kind"] == "service" and not i["restart"] and i["name"] in restarted)
        ]
    return work


def backup_now_work(plan: Plan) -> Work:
    work: Work = {}
    for action in plan.actions:
        if action.kind == "backup_now" and action.service is not None:
            name = action.service.removeprefix("backup:")
            work.setdefault(action.host, []).append({"kind": "backup_now", "name": name})
    return work


def worker_apply_request(
    loaded: LoadedFleet, work: Work, settings: ObserveSettings, secrets: BackupSecrets | None
) -> dict[str, Any]:
    base = worker_request(loaded.fleet, settings)
    return {
        "op": "apply",
        "targets": base["targets"],
        "state_file": str(loaded.file),
        "state_text": loaded.file.read_text(encoding="utf-8"),
        "work": work,
        "backup_passwords": secrets.passwords if secrets else {},
        "backup_key": {"private": secrets.private_key, "public": secrets.public_key}
        if secrets
        else None,
        "connect_timeout": settings.connect_timeout,
        "command_timeout": settings.command_timeout,
    }


def describe_work(items: list[dict[str, Any]]) -> str:
    names = []
    for item in items:
        if item["kind"] == "repo_access":
            names.append("backup repository access")
        elif item["kind"] == "service":
            names.append(item["name"])
        else:
            names.append(f"{item['kind'].replace('_', ' ')} {item['name']}")
    return ", ".join(names)


def run_deploys(
    loaded: LoadedFleet,
    work: Work,
    settings: ObserveSettings,
    report: Report,
    secrets: BackupSecrets | None = None,
) -> dict[str, HostOutcome]:
    """One worker cycle running `work`; per host, what changed and why it failed."""
    request = worker_apply_request(loaded, work, settings, secrets)
    outcomes = {h: HostOutcome(h) for h in work}
    if not outcomes:
        return outcomes
    for host, items in work.items():
        report(
            f"{host}: {'running' if items[0]['kind'] == 'backup_now' else 'deploying'} "
            f"{describe_work(items)}"
        )
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
