"""One reconcile pass: observe, diff, plan, and (outside dry-run) apply and verify.

Returns data and prints nothing; progress goes through the `report` callbacks.
`plan_once` is the dry-run stage boundary: it builds the whole plan and stops, as
pyinfra's CLI stops before `run_ops`. `apply_plan` is the only path that changes hosts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import httpx

from reconciler.apply.backups import init_repositories, without_failed
from reconciler.apply.context import Report, RunContext
from reconciler.apply.deploys import (
    HostOutcome,
    backup_now_work,
    deploy_work,
    run_deploys,
    start_units,
)
from reconciler.apply.gate import health_gate
from reconciler.apply.model_pulls import apply_models
from reconciler.apply.result import ApplyResult
from reconciler.engine.changes import Phase
from reconciler.engine.diff import diff
from reconciler.engine.diff_backups import copy_named
from reconciler.engine.plan import (
    Plan,
    exclude_from_plan,
    filter_plan,
    make_plan,
    parse_target,
    pure_starts,
)
from reconciler.hosts.client import WarmWorker, WorkerProcess
from reconciler.hosts.observation import FleetState
from reconciler.hosts.observe import ObserveSettings, observe
from reconciler.repositories.copies import copy_now
from reconciler.repositories.operations import BackupFailed, apply_retention, record_last_backup
from reconciler.repositories.rebuild import rebuild_data
from reconciler.repositories.restorable import (
    copies_taken,
    credit_recorded,
    rebuild_source,
    record_observed,
)
from reconciler.repositories.secrets import backup_inputs, backup_secrets
from reconciler.store.confirmations import Confirmation, Confirmations
from reconciler.store.ledger import Ledger
from state.layout import backup_policy_of
from state.load import LoadedFleet


@dataclass(frozen=True)
class PlanResult:
    observed: FleetState
    plan: Plan


def plan_once(
    loaded: LoadedFleet,
    client: httpx.Client,
    settings: ObserveSettings | None = None,
    worker: WorkerProcess | WarmWorker | None = None,
    targets: list[str] | tuple[str, ...] = (),
    confirmations: Confirmations | None = None,
    ledger: Ledger | None = None,
    record: bool = True,
    fresh_data: bool = False,
) -> PlanResult:
    """Observe the fleet and plan what would converge it. Changes nothing on any host.

    With `ledger`, the snapshots the hosts report are judged and a policy's RPO counts
    only the recorded ones (reconciler.repositories.restorable). They are kept in the ledger
    when `record`: applies and `watch`, never a dry run (its state file is a proposal,
    and it shows what an apply would record).
    With `confirmations`, it remembers the newest snapshots the repositories listed.
    A policy whose data is gone from its host is rebuilt from the newest recorded
    snapshot, unless `fresh_data` (or the policy's `restore: never`).
    With `targets`, only the targeted hosts are observed: a heal of one host, or
    `--target`, never waits for the rest of the fleet."""
    settings = settings or ObserveSettings()
    if targets:
        settings = replace(settings, hosts=frozenset(parse_target(t)[0] for t in targets))
    observed = observe(loaded, client, settings, worker, confirmations, ledger)
    if ledger is not None:
        judged = record_observed(loaded, observed, ledger, keep=record)
        observed = credit_recorded(loaded, observed, ledger, judged)
    if confirmations is not None:
        remember_confirmations(loaded, observed, confirmations)
    inputs = {
        name: replace(
            found,
            restore_from=(
                rebuild_source(loaded, ledger, name, _unreadable(observed, name))
                if ledger is not None
                else None
            ),
            fresh_data=fresh_data,
            copies_taken=copies_taken(loaded, ledger, name) if ledger is not None else None,
        )
        for name, found in backup_inputs(loaded.fleet).items()
    }
    changes = diff(loaded, observed, inputs)
    plan = make_plan(loaded, observed, changes)
    return PlanResult(observed, filter_plan(plan, list(targets)))


def _unreadable(observed: FleetState, name: str) -> bool:
    state = observed.backups.get(name)
    return state is not None and state.error is not None


def remember_confirmations(
    loaded: LoadedFleet, observed: FleetState, confirmations: Confirmations
) -> None:
    """Keep each newest snapshot a repository listed just now (see reconciler.hosts.snapshots)."""
    assert observed.observed_at is not None
    for name, state in observed.backups.items():
        if state.listed and state.newest_id and state.last_snapshot is not None:
            found = Confirmation(
                state.newest_id,
                state.last_snapshot.timestamp(),
                state.snapshots,
                observed.observed_at.timestamp(),
            )
            confirmations.put_policy(loaded.fleet, name, found)


def apply_plan(loaded: LoadedFleet, plan: Plan, ctx: RunContext) -> ApplyResult:
    """Execute `plan`: repository init, deploys (services, backup policies), the health
    gate, models, then the backups whose RPO is breached; observe again to verify."""
    result = ApplyResult()
    for host in plan.hosts:
        if not host.reachable and host.actions:
            result.hosts[host.name] = HostOutcome(host.name, error=host.actions[0].reason)
            ctx.record(host.name, None, "connect", "error", host.actions[0].reason)
    failed = init_repositories(loaded, plan, ctx.report)
    # A blank host's data first: its services never start on empty data.
    failed.update(rebuild_data(loaded, plan, Ledger(ctx.journal), ctx.report, ctx.record))
    starts = {  # a unit stopped and nothing else: `systemctl start` alone
        host: units for host, units in pure_starts(plan).items() if host not in failed
    }
    keys: set[tuple[str, str | None]] = {(h, s) for h, ss in starts.items() for s in ss}
    work = deploy_work(loaded, exclude_from_plan(plan, keys))
    secrets, no_secret = backup_secrets(loaded.fleet, work, ctx.journal.path.parent)
    failed.update(no_secret)
    _fail(result, ctx, failed, "backup")
    timeouts = ctx.settings.timeouts
    deployed = start_units(loaded, starts, timeouts, ctx.report, ctx.ssh)
    for name, outcome in run_deploys(
        loaded, without_failed(work, failed), timeouts, ctx.report, secrets, ctx.ssh
    ).items():
        deployed.setdefault(name, HostOutcome(name)).merge(outcome)
    for name, outcome in deployed.items():
        result.hosts[name] = outcome
        _journal_ops(ctx, outcome)
    gated = {
        h: sorted({i.name for i in work.get(h, []) if i.kind == "service"} | set(starts.get(h, [])))
        for h, o in deployed.items()
        if o.error is None
    }

    gate = gate_health(loaded, gated, ctx.client, ctx.settings, ctx.report, ctx.ssh)
    for host_name, reason in gate.items():
        result.hosts[host_name].error = reason
        ctx.record(host_name, reason.split()[0], "health", "error", reason)
    _apply_models(loaded, plan, ctx, result)
    _run_backups_now(loaded, plan, ctx, result)
    _run_copies(loaded, plan, ctx)
    ctx.report("verifying: observing the fleet again")
    confirmations, ledger = Confirmations(ctx.journal), Ledger(ctx.journal)
    verified = plan_once(
        loaded,
        ctx.client,
        ctx.settings,
        ctx.ssh,
        ctx.targets,
        confirmations,
        ledger,
        fresh_data=ctx.fresh_data,
    )
    result.remaining, result.observed = verified.plan, verified.observed
    return result


def gate_health(
    loaded: LoadedFleet,
    services: dict[str, list[str]],
    client: httpx.Client,
    settings: ObserveSettings,
    report: Report,
    ssh: WarmWorker | None,
) -> dict[str, str]:
    """The health gate over `services` ({host: names}), polling only the hosts it waits
    on; {host: reason} for those with a service that never became healthy."""

    def health_of(hosts: set[str]) -> FleetState:
        polled = replace(settings, health_only=True, hosts=frozenset(hosts))
        return observe(loaded, client, polled, ssh)

    return health_gate(loaded, services, health_of, report)


def _fail(result: ApplyResult, ctx: RunContext, failed: dict[str, str], step: str) -> None:
    for host, reason in failed.items():
        result.hosts.setdefault(host, HostOutcome(host)).error = reason
        ctx.record(host, None, step, "error", reason)


def _run_copies(loaded: LoadedFleet, plan: Plan, ctx: RunContext) -> None:
    """Fill each copy the plan found stale, after the backups ran. A copy that fails is
    reported and journaled; the verification's plan still shows it due."""
    ledger = Ledger(ctx.journal)
    for action in plan.actions:
        name = backup_policy_of(action.service)
        if action.kind != "copy_now" or name is None:
            continue
        copy = copy_named(action.subject)
        try:
            done = copy_now(loaded, name, copy, ledger, ctx.report)
        except BackupFailed as exc:
            ctx.report(f"{action.host}: {exc}")
            ctx.record(action.host, action.service, "copy", "error", str(exc))
            continue
        detail = f"copy {copy}: {len(done.new)} new, keeps {done.kept}, {done.seconds:.1f}s"
        ctx.report(f"{action.host}: backup {name}: {detail}")
        ctx.record(action.host, action.service, "copy", "ok", detail)


def _run_backups_now(loaded: LoadedFleet, plan: Plan, ctx: RunContext, result: ApplyResult) -> None:
    """Run the backup units whose RPO is breached, after everything else converged."""
    failed = {h for h, o in result.hosts.items() if o.error}
    work = {h: items for h, items in backup_now_work(plan).items() if h not in failed}
    deployed = run_deploys(loaded, work, ctx.settings.timeouts, ctx.report, ssh=ctx.ssh)
    for name, outcome in deployed.items():
        current = result.hosts.setdefault(name, HostOutcome(name))
        current.merge(outcome)
        _journal_ops(ctx, outcome)
        for item in work[name] if outcome.error is None else []:
            assert item.kind == "backup_now"
            try:  # recorded as the controller ran it; only the controller applies retention
                ledger = Ledger(ctx.journal)
                taken = record_last_backup(loaded, item.name, ledger)
                ctx.report(f"{name}: backup {item.name}: recorded snapshot {taken.short_id}")
                kept = apply_retention(loaded, item.name, ctx.report, ledger)
                ctx.report(f"{name}: backup {item.name}: retention kept {len(kept)} snapshot(s)")
            except BackupFailed as exc:
                current.error = current.error or str(exc)


def _apply_models(loaded: LoadedFleet, plan: Plan, ctx: RunContext, result: ApplyResult) -> None:
    failed_hosts = {h for h, o in result.hosts.items() if o.error}
    changes = [
        a
        for a in plan.actions
        if a.phase == Phase.MODELS and a.action != "alert" and a.host not in failed_hosts
    ]
    for change, error in apply_models(loaded, changes, ctx.client, ctx.report, ctx.progress):
        outcome = result.hosts.setdefault(change.host, HostOutcome(change.host))
        if error is None:
            outcome.changed.append(f"{change.subject} ({change.kind.removeprefix('model_')})")
        elif outcome.error is None:
            outcome.error = error
        status = "error" if error else "changed"
        ctx.record(change.host, change.service, change.subject, status, error or "")


def _journal_ops(ctx: RunContext, outcome: HostOutcome) -> None:
    for op in outcome.results:
        service = op.name.split("| ")[-1].split(":")[0] if ": " in op.name else None
        ctx.record(outcome.name, service, op.name, op.status, op.stderr)
    if outcome.error and not any(op.status == "error" for op in outcome.results):
        ctx.record(outcome.name, None, "deploy", "error", outcome.error)
