"""One reconcile pass: observe, diff, plan, and (outside dry-run) apply and verify.

Returns data and prints nothing; progress goes through the `report` callbacks.
`plan_once` is the dry-run stage boundary: it builds the whole plan and stops, as
pyinfra's CLI stops before `run_ops`. `apply_plan` is the only path that changes hosts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import httpx

from reconciler.apply import (
    HostOutcome,
    ProgressReport,
    Report,
    apply_models,
    backup_now_work,
    deploy_work,
    health_gate,
    run_deploys,
)
from reconciler.apply_backups import backup_secrets, init_repositories, without_failed
from reconciler.backup_commands import BackupFailed, apply_retention
from reconciler.changes import Phase
from reconciler.diff import diff
from reconciler.journal import Journal
from reconciler.observe import ObserveSettings, observe
from reconciler.observe_backups import env_digests
from reconciler.observed import FleetState
from reconciler.plan import Plan, filter_plan, make_plan
from reconciler.worker import WorkerProcess
from state.load import LoadedFleet


@dataclass(frozen=True)
class PlanResult:
    observed: FleetState
    plan: Plan


@dataclass
class ApplyResult:
    """Per-host outcomes, and the plan that verification found left over."""

    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    remaining: Plan | None = None
    seconds: float = 0.0

    @property
    def converged(self) -> bool:
        failed = any(o.error for o in self.hosts.values())
        return not failed and self.remaining is not None and not self.remaining.summary.pending


def plan_once(
    loaded: LoadedFleet,
    client: httpx.Client,
    settings: ObserveSettings | None = None,
    worker: WorkerProcess | None = None,
    targets: list[str] | None = None,
) -> PlanResult:
    """Observe the fleet and plan what would converge it. Changes nothing."""
    observed = observe(loaded, client, settings, worker)
    changes = diff(loaded, observed, env_digests(loaded.fleet))
    plan = make_plan(loaded, observed, changes)
    return PlanResult(observed, filter_plan(plan, targets or []))


def apply_plan(
    loaded: LoadedFleet,
    plan: Plan,
    client: httpx.Client,
    journal: Journal,
    run_id: str,
    report: Report,
    progress: ProgressReport,
    targets: list[str] | None = None,
    settings: ObserveSettings | None = None,
) -> ApplyResult:
    """Execute `plan`: repository init, deploys (services, backup policies), the health
    gate, models, then the backups whose RPO is breached; observe again to verify."""
    settings = settings or ObserveSettings()
    started = time.monotonic()
    result = ApplyResult()
    for host in plan.hosts:
        if not host.reachable and host.actions:
            result.hosts[host.name] = HostOutcome(host.name, error=host.actions[0].reason)
            journal.record(run_id, host.name, None, "connect", "error", host.actions[0].reason)
    failed = init_repositories(loaded, plan, report)
    work = deploy_work(loaded, plan)
    secrets, no_secret = backup_secrets(loaded, work, journal.path.parent)
    failed.update(no_secret)
    _fail(result, journal, run_id, failed, "backup")
    deployed = run_deploys(loaded, without_failed(work, failed), settings, report, secrets)
    for name, outcome in deployed.items():
        result.hosts[name] = outcome
        _journal_ops(journal, run_id, outcome)
    gated = {
        h: sorted({i["name"] for i in work[h] if i["kind"] == "service"})
        for h, o in deployed.items()
        if o.error is None
    }
    health_only = replace(settings, health_only=True)  # the gate polls: read only health
    gate = health_gate(loaded, gated, lambda: observe(loaded, client, health_only), report)
    for host_name, reason in gate.items():
        result.hosts[host_name].error = reason
        journal.record(run_id, host_name, reason.split()[0], "health", "error", reason)
    _apply_models(loaded, plan, client, journal, run_id, result, report, progress)
    _run_backups_now(loaded, plan, settings, journal, run_id, result, report)
    report("verifying: observing the fleet again")
    result.remaining = plan_once(loaded, client, settings, targets=targets).plan
    result.seconds = time.monotonic() - started
    return result


def _fail(
    result: ApplyResult, journal: Journal, run_id: str, failed: dict[str, str], step: str
) -> None:
    for host, reason in failed.items():
        result.hosts.setdefault(host, HostOutcome(host)).error = reason
        journal.record(run_id, host, None, step, "error", reason)


def _run_backups_now(
    loaded: LoadedFleet,
    plan: Plan,
    settings: ObserveSettings,
    journal: Journal,
    run_id: str,
    result: ApplyResult,
    report: Report,
) -> None:
    """Run the backup units whose RPO is breached, after everything else converged."""
    failed = {h for h, o in result.hosts.items() if o.error}
    work = {h: items for h, items in backup_now_work(plan).items() if h not in failed}
    for name, outcome in run_deploys(loaded, work, settings, report).items():
        current = result.hosts.setdefault(name, HostOutcome(name))
        current.changed += outcome.changed
        current.error = current.error or outcome.error
        _journal_ops(journal, run_id, outcome)
        for item in work[name] if outcome.error is None else []:
            try:  # hosts only add snapshots; the controller applies retention
                kept = apply_retention(loaded, item["name"])
                report(f"{name}: backup {item['name']}: retention kept {len(kept)} snapshot(s)")
            except BackupFailed as exc:
                current.error = current.error or str(exc)


def _apply_models(
    loaded: LoadedFleet,
    plan: Plan,
    client: httpx.Client,
    journal: Journal,
    run_id: str,
    result: ApplyResult,
    report: Report,
    progress: ProgressReport,
) -> None:
    failed_hosts = {h for h, o in result.hosts.items() if o.error}
    changes = [
        a
        for a in plan.actions
        if a.phase == Phase.MODELS and a.action != "alert" and a.host not in failed_hosts
    ]
    for change, error in apply_models(loaded, changes, client, report, progress):
        outcome = result.hosts.setdefault(change.host, HostOutcome(change.host))
        if error is None:
            outcome.changed.append(f"{change.subject} ({change.kind.removeprefix('model_')})")
        elif outcome.error is None:
            outcome.error = error
        journal.record(
            run_id,
            change.host,
            change.service,
            change.subject,
            "error" if error else "changed",
            error or "",
        )


def _journal_ops(journal: Journal, run_id: str, outcome: HostOutcome) -> None:
    for op in outcome.results:
        service = op["name"].split("| ")[-1].split(":")[0] if ": " in op["name"] else None
        journal.record(run_id, outcome.name, service, op["name"], op["status"], op["stderr"])
    if outcome.error and not any(op["status"] == "error" for op in outcome.results):
        journal.record(run_id, outcome.name, None, "deploy", "error", outcome.error)
