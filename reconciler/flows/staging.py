"""A promotion's staging: while the data is restored, deploy on the target everything
it will run but the start; after the commit, start the failover services alone and
gate them (a promotion serves within seconds of its commit)."""

from __future__ import annotations

from concurrent.futures import Future

from reconciler.apply.backups import without_failed
from reconciler.apply.deploys import deploy_work, run_deploys, staged, start_units
from reconciler.flows.mover import Mover, journal_step
from reconciler.flows.once import gate_health, plan_once
from reconciler.hosts.client import WarmWorker
from reconciler.hosts.observe import ObserveSettings
from reconciler.hosts.protocol import Timeouts
from reconciler.repositories.secrets import backup_secrets
from reconciler.store.failover_state import Move, placed
from state.placement import Placement


def stage(mover: Mover, move: Move, ssh: WarmWorker) -> list[str]:
    """While the data is restored: deploy on the target everything it will run under the
    new placement but the failover services' start (unit files, config, the data
    policies' units, all guarded by the lease it does not hold yet), so that after the
    commit what is left is `systemctl start`. The failed hosts' reasons."""
    loaded = mover.loaded.placed(Placement(active=move.target, epoch=move.epoch))
    if mover.guard is not None:
        mover.guard([move.target])  # a deposed leader stages nothing either
    plan = plan_once(loaded, mover.client, worker=ssh, targets=[move.target]).plan
    work = staged(deploy_work(loaded, plan), mover.failover.services)
    secrets, failed = backup_secrets(loaded.fleet, work, mover.journal.path.parent)
    outcomes = run_deploys(
        loaded, without_failed(work, failed), Timeouts(), mover.report, secrets, ssh
    )
    return [*failed.values(), *(o.error for o in outcomes.values() if o.error)]


def staged_result(mover: Mover, run_id: str, move: Move, staging: Future[list[str]]) -> bool:
    """Wait for the staging; whether it deployed everything. A failed one is said, never
    fatal: the deploy after the commit converges whatever it left."""
    try:
        errors = staging.result()
    except Exception as exc:
        errors = [f"{type(exc).__name__}: {exc}"]
    detail = "; ".join(errors) or "deployed, not started"
    journal_step(mover, run_id, move.target, "stage (all but the start)", not errors, detail)
    return not errors


def start_staged(mover: Mover, run_id: str, move: Move, ssh: WarmWorker) -> str | None:
    """After the commit of a staged promotion: start the failover services at once (the
    staging left nothing else for them) and hold them to the health gate; the errors.
    Observing the target first, as the deploy after it does, cost a second of outage."""
    if mover.guard is not None:
        mover.guard([move.target])
    services = mover.loaded.written.services
    units = [n for n in mover.failover.services if services[n].unit is not None]
    if not units:
        return None
    loaded = placed(mover.loaded, mover.journal)
    started = start_units(loaded, {move.target: units}, Timeouts(), mover.report, ssh)
    error = started[move.target].error if move.target in started else None
    if error is None:
        gated = {move.target: units}
        failed = gate_health(loaded, gated, mover.client, ObserveSettings(), mover.report, ssh)
        error = failed.get(move.target)
    journal_step(mover, run_id, move.target, "start and health gate", error is None, error or "")
    return error
