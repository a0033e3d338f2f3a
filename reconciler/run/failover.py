"""Failover, failback and switchover: moving the failover services between the primary
and the backup, with their data, fenced, journaled step by step.

A move records itself (`Move`) before it touches anything. Its one decisive write is
the placement (host and epoch) in the failover store, a single SQLite commit: a move
that stops before it is rolled back on resume (the services stay where they were, under
a raised epoch); a move that stops after it is finished by deploying that placement.
So a controller killed at any step ends in one consistent placement.

Promotion (the primary is lost): restore the newest snapshot of every data policy on
the backup, state the data loss against the RPO (over it, wait for
`--accept-data-loss`), give the backup a lease in the new epoch, record the placement,
deploy and health-gate. The primary has already stopped its own copies: its lease
lapsed `grace - fence_after` earlier.

Switchover (failback, or a planned move): stop the services at the source, take a
final backup there, revoke the source's lease in the new epoch, restore that exact
snapshot at the target, lease, record, deploy. Zero data loss.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import httpx

from backups.restic_repo import Snapshot
from reconciler.apply.backups import without_failed
from reconciler.apply.context import ProgressReport, Report, no_progress
from reconciler.apply.deploys import deploy_work, run_deploys, staged, start_units
from reconciler.apply.failover_steps import final_backup, set_lease, stop_units
from reconciler.backup.in_place import Restored, restore_in_place
from reconciler.backup.operations import BackupFailed
from reconciler.backup.provenance import ProvenanceError, record_reported
from reconciler.backup.secrets import backup_secrets
from reconciler.engine.failover import (
    Alarm,
    Sighting,
    Verdict,
    alarm,
    assess,
    duration,
    retry_delay,
)
from reconciler.errors import PermanentError
from reconciler.events.bus import Event, EventBus, EventKind
from reconciler.observe.fleet import ObserveSettings
from reconciler.observe.observation import FleetState
from reconciler.observe.witness import ask_backup, primary_answers
from reconciler.run.failover_data import (
    Candidate,
    data_plan,
    name_locks,
    nothing_restored,
    restore_best,
    unrestorable,
)
from reconciler.run.lifecycle import Runner, execute_plan
from reconciler.run.once import gate_health, plan_once
from reconciler.ssh.client import WarmWorker
from reconciler.ssh.protocol import Timeouts
from reconciler.ssh.remote import run_remote
from reconciler.store.failover import FailoverState, FailoverStore, Move, MoveStep
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from state.load import LoadedFleet
from state.models import Failover, Fleet
from state.placement import Placement, data_policies

BACKUP_TIMEOUT_S = 3600.0
FAILPOINT_ENV = "FLEET_RECONCILER_FAILPOINT"


def failpoint(name: str) -> None:
    """Die here, as a crash or SIGKILL would, when FLEET_RECONCILER_FAILPOINT names this
    step: how the crash-point tests stop a move at each step. Unset, it does nothing."""
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class MoveFailed(PermanentError, RuntimeError):
    """A move could not go ahead; it was rolled back and the services stay where they were."""


@dataclass(frozen=True)
class Mover:
    """What a move needs: the fleet as written, where it is journaled, and reported."""

    loaded: LoadedFleet
    journal: Journal
    client: httpx.Client
    bus: EventBus
    report: Report
    progress: ProgressReport = no_progress
    guard: Callable[[list[str]], None] | None = None  # leadership and fencing token

    @property
    def failover(self) -> Failover:
        failover = self.loaded.written.failover
        assert failover is not None
        return failover

    @property
    def store(self) -> FailoverStore:
        return FailoverStore(self.journal, self.failover)


def placed(loaded: LoadedFleet, journal: Journal) -> LoadedFleet:
    """`loaded` with the failover services where the failover store says they run."""
    failover = loaded.written.failover
    if failover is None:
        return loaded.placed(Placement())
    return loaded.placed(FailoverStore(journal, failover).get().placement)


def sight(
    loaded: LoadedFleet,
    client: httpx.Client,
    report: Report,
    state: FailoverState,
    observed: FleetState | None,
    renew: bool,
    renewal: float | None = None,
) -> Sighting:
    """This pass's view of the pair. With `renew`, the active host's lease is renewed (a
    write, so never in a dry run) and a returning fenced primary is told the epoch."""
    fleet = loaded.written
    failover = fleet.failover
    assert failover is not None
    epoch = state.placement.epoch
    active = state.placement.active or failover.primary
    primary = fleet.hosts[failover.primary]
    seconds = int(failover.fence_after.total_seconds())
    if renew and active == failover.primary and state.down_since is not None:
        return _sight_counting(fleet, client, report, epoch, renewal)
    if renew:
        lease = set_lease(fleet.hosts[active], epoch, seconds)
        # Failed over, the primary stays fenced: revoked, and told the epoch.
        reached = set_lease(primary, epoch, 0).ok if active != failover.primary else lease.ok
        if not lease.ok:
            report(f"failover: lease on {active} not renewed: {lease.error}")
    elif observed is not None and failover.primary in observed.hosts:
        reached = observed.hosts[failover.primary].reachable  # the plan just asked it
    else:
        reached = run_remote(primary, "true", 8.0).ok
    if not reached and active == failover.primary:
        if observed is not None:
            health = observed.health
            reached = any(r.healthy for name in failover.services for r in health.get(name, ()))
        else:
            reached = primary_answers(fleet, client)
    if reached or active != failover.primary:
        return Sighting(primary_reached=reached, backup_reached=True)
    witness = ask_backup(fleet)
    return Sighting(
        False, witness.asked, witness.asked and witness.sees_primary, witness.detail, renewal
    )


def _sight_counting(
    fleet: Fleet, client: httpx.Client, report: Report, epoch: int, renewal: float | None
) -> Sighting:
    """A sighting while the failover clock counts: the primary's lease, its health checks
    and the backup's second opinion asked at once, so that a pass takes one timeout and
    not their sum (the promotion starts within a second of the grace's end, not a
    sighting's worth of timeouts after it)."""
    failover = fleet.failover
    assert failover is not None
    seconds = int(failover.fence_after.total_seconds())
    primary = fleet.hosts[failover.primary]
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="sighting") as pool:
        leased = pool.submit(set_lease, primary, epoch, seconds)
        answered = pool.submit(primary_answers, fleet, client)
        witnessed = pool.submit(ask_backup, fleet)
    lease = leased.result()
    if lease.ok or answered.result():
        return Sighting(primary_reached=True, backup_reached=True)
    report(f"failover: lease on {failover.primary} not renewed: {lease.error}")
    witness = witnessed.result()
    return Sighting(
        False, witness.asked, witness.asked and witness.sees_primary, witness.detail, renewal
    )


def review(
    loaded: LoadedFleet,
    journal: Journal | None,
    client: httpx.Client,
    observed: FleetState | None = None,
) -> tuple[FailoverState, Verdict] | None:
    """What a pass would decide now, for a dry run and `status`: sights without writing
    anything (no lease renewed, nothing stored). `observed`, the plan's observation,
    saves asking the primary again. None without failover."""
    failover = loaded.written.failover
    if failover is None:
        return None
    state = FailoverStore(journal, failover).get() if journal is not None else FailoverState()
    seen = sight(loaded, client, lambda _line: None, state, observed, renew=False)
    return state, assess(failover, state, seen, time.time())


def tick(mover: Mover, observed: FleetState | None = None) -> Verdict:
    """One failover pass: finish or roll back a cut-short move, renew the lease, sight,
    assess, act. Call it holding the fleet's lock."""
    store = mover.store
    state = store.get()
    if state.move is not None:
        resume(mover)
        state = store.get()
    renewal = store.last_renewal(mover.failover.primary)
    seen = sight(mover.loaded, mover.client, mover.report, state, observed, True, renewal)
    verdict = assess(mover.failover, state, seen, time.time())
    paging = alarm(state, verdict, seen)
    if paging is not None:
        verdict = replace(
            verdict, state=verdict.state.model_copy(update={"alarmed": paging == "raise"})
        )
    store.put(verdict.state)
    if paging is not None:
        _page(mover, paging, verdict)
    if verdict.action != "steady" and (verdict.action != "failed_over" or state != verdict.state):
        mover.report(verdict.line)
    if verdict.action == "promote":
        try:
            promote(mover)
        except MoveFailed as exc:
            mover.report(f"failover: {exc}")
    elif verdict.action == "failback":
        try:
            switchover(mover, mover.failover.primary, "automatic failback")
        except MoveFailed as exc:
            mover.report(f"failback: {exc}")
    return verdict


def _page(mover: Mover, paging: Alarm, verdict: Verdict) -> None:
    primary = mover.failover.primary
    if paging == "raise":
        event = Event("P0", "primary_down", verdict.line.removeprefix("! failover "), primary)
    else:
        event = Event("P3", "primary_back", f"{primary} reachable again", primary)
    mover.bus.emit(event)


def promote(mover: Mover, accept_data_loss: bool = False) -> FailoverState:
    """Move the failover services to the backup because the primary is lost."""
    failover, store = mover.failover, mover.store
    state = store.get()
    if (state.placement.active or failover.primary) != failover.primary:
        raise MoveFailed(f"already failed over to {state.placement.active}")
    lost_at = state.down_since or state.last_contact or time.time()  # last known alive
    down_for = duration(time.time() - lost_at)
    down = f"{failover.primary} unreachable for {down_for}"
    move = _begin(mover, state, "failover", failover.primary, failover.backup, "restore", down)
    run_id = _start_run(mover, move)
    with contextlib.closing(WarmWorker()) as ssh:  # the staging's connections, kept
        return _promote(mover, state, move, run_id, lost_at, accept_data_loss, ssh)


def _promote(
    mover: Mover,
    state: FailoverState,
    move: Move,
    run_id: str,
    lost_at: float,
    accept_data_loss: bool,
    ssh: WarmWorker,
) -> FailoverState:
    failover, store = mover.failover, mover.store
    try:
        plan = data_plan(mover.loaded, Ledger(mover.journal), lost_at)
        unlisted = [why for loss in plan.values() if loss.snapshot is None for why in loss.unlisted]
        if unlisted:  # not known to be lost: tried again on the next pass
            raise BackupFailed("; ".join(unlisted))
        accept = accept_data_loss or failover.data_loss == "allow"
        over = [loss.statement for loss in plan.values() if not loss.within_rpo]
        if over and not accept:
            held = "; ".join(over) + ": `reconcile failover --accept-data-loss` proceeds"
            _roll_back(mover, move, run_id, held, kind=None)
            store.put(store.get().model_copy(update={"held": held}))
            mover.bus.emit(
                Event(
                    "P0",
                    "failover_held",
                    f"failover of {failover.primary} held: {held}",
                    failover.primary,
                    None,
                    {"data_loss": over, "epoch": move.epoch},
                )
            )
            raise MoveFailed(f"held: {held}")
        restored = []
        with ThreadPoolExecutor(1, thread_name_prefix="stage") as pool:
            staging = pool.submit(_stage, mover, move, ssh)
            try:
                for name, loss in list(plan.items()):
                    if loss.snapshot is None:
                        continue
                    try:
                        done, plan[name] = restore_best(
                            mover.loaded, name, loss, failover.backup, Ledger(mover.journal),
                            mover.bus, mover.report, lost_at,
                        )  # fmt: skip
                    except BackupFailed as exc:
                        if not accept:
                            raise BackupFailed(f"{exc} (data_loss: hold)") from None
                        plan[name] = nothing_restored(mover.loaded, name, str(exc))
                        said = plan[name].statement
                        _step(mover, run_id, failover.backup, f"restore {name}", False, said)
                        continue
                    _restored(mover, run_id, done, failover.backup)
                    restored.append(done)
            finally:  # a move never rolls back while the target is being deployed
                staged_ok = _staged(mover, run_id, move, staging)
        failpoint("failover:restored")
        move = _advance(mover, move, "lease")  # from here the target may know the epoch
        _lease_target(mover, run_id, move)
        failpoint("failover:leased")
        statement = "; ".join(loss.statement for loss in plan.values()) or "no data policies"
        statement += (
            f"; {failover.primary} may have written up to "
            f"{duration(failover.fence_after.total_seconds())} more before its lease lapsed"
        )
        figures = {
            name: {
                "snapshot": loss.snapshot.id if loss.snapshot else None,
                "snapshot_at": loss.snapshot.time.timestamp() if loss.snapshot else None,
                "seconds": loss.seconds,
            }
            for name, loss in plan.items()
        }
        _commit(mover, state, move, run_id, statement)
        failpoint("failover:committed")
    except (BackupFailed, OSError) as exc:
        _roll_back(mover, move, run_id, str(exc), page=state.attempts == 0)
        _back_off(mover, str(exc))
        raise MoveFailed(str(exc)) from None
    figures_context = {"lost_at": lost_at, "losses": figures}
    moved = _finish(
        mover, move, run_id, "failover", statement, restored, figures_context, ssh, staged_ok
    )
    for name in plan:  # served: now the locks the restore read past are named
        name_locks(mover.loaded, name, mover.bus)
    return moved


def switchover(mover: Mover, to: str, reason: str) -> FailoverState:
    """Move the failover services to `to` with zero data loss (failback, or planned)."""
    failover, store = mover.failover, mover.store
    state = store.get()
    source = state.placement.active or failover.primary
    if to not in (failover.primary, failover.backup):
        raise MoveFailed(
            f"{to} is neither the primary {failover.primary} nor the backup {failover.backup}"
        )
    if to == source:
        raise MoveFailed(f"the services already run on {to}")
    move = _begin(mover, state, "switchover", source, to, "stop", reason)
    run_id = _start_run(mover, move)
    hosts = mover.loaded.written.hosts
    try:
        services = mover.loaded.written.services
        running = [n for n in failover.services if services[n].unit is not None]
        stopped = stop_units(hosts[source], running)  # a service without a unit runs nothing
        _step(mover, run_id, source, "stop services", stopped.ok, stopped.error)
        if not stopped.ok:
            raise MoveFailed(f"could not stop the services on {source}: {stopped.error}")
        failpoint("switchover:stopped")
        move = _advance(mover, move, "backup")
        finals = {
            name: _final_backup(mover, run_id, source, name)
            for name in data_policies(mover.loaded.written)
        }
        failpoint("switchover:backed-up")
        revoked = set_lease(hosts[source], move.epoch, 0)
        _step(
            mover, run_id, source, f"revoke lease (epoch {move.epoch})", revoked.ok, revoked.error
        )
        if not revoked.ok:
            raise MoveFailed(f"could not fence {source}: {revoked.error}")
        failpoint("switchover:revoked")
        move = _advance(mover, move, "restore")
        restored = [_restore_final(mover, run_id, name, snap, to) for name, snap in finals.items()]
        failpoint("switchover:restored")
        _lease_target(mover, run_id, move)
        statement = (
            "zero data loss: final snapshot(s) "
            + ", ".join(f"{r.policy} {r.snapshot.short_id}" for r in restored)
            if restored
            else "zero data loss: no data policies"
        )
        _commit(mover, state, move, run_id, statement)
        failpoint("switchover:committed")
    except (BackupFailed, MoveFailed, OSError) as exc:
        _roll_back(mover, move, run_id, str(exc))
        raise MoveFailed(str(exc)) from None
    kind: EventKind = "failback" if to == failover.primary else "switchover"
    return _finish(mover, move, run_id, kind, statement, restored)


def resume(mover: Mover) -> None:
    """Finish or roll back a move that a stopped controller left (see the module doc)."""
    state = mover.store.get()
    move = state.move
    if move is None:
        return
    run_id = _start_run(mover, move)
    if move.step == "deploy":
        mover.report(
            f"{move.kind} to {move.target} was cut short after its placement was "
            "recorded: finishing it"
        )
        kind: EventKind = (
            "failover"
            if move.kind == "failover"
            else ("failback" if move.target == mover.failover.primary else "switchover")
        )
        _finish(mover, move, run_id, kind, state.data_loss, [])
        return
    _roll_back(mover, move, run_id, f"the controller stopped during step {move.step!r}")


# -- steps ------------------------------------------------------------------------------
def _begin(
    mover: Mover,
    state: FailoverState,
    kind: str,
    source: str,
    target: str,
    step: str,
    reason: str,
) -> Move:
    move = Move.model_validate(
        {
            "kind": kind,
            "source": source,
            "target": target,
            "epoch": state.placement.epoch + 1,
            "step": step,
            "started": time.time(),
            "reason": reason,
        }
    )
    mover.store.put(state.model_copy(update={"move": move}))
    mover.report(
        f"{kind}: {', '.join(mover.failover.services)} {source} -> {target} "
        f"(epoch {move.epoch}): {reason}"
    )
    return move


def _advance(mover: Mover, move: Move, step: MoveStep) -> Move:
    # Validated, not copied: a step the store cannot read back (CI saw "lease", before
    # it was a MoveStep) crashed every reader of the state, the lease keeper among them.
    moved = Move.model_validate({**move.model_dump(), "step": step})
    mover.store.put(mover.store.get().model_copy(update={"move": moved}))
    return moved


def _start_run(mover: Mover, move: Move) -> str:
    loaded = mover.loaded
    return mover.journal.start_run(
        str(loaded.file), loaded.sha256, None, None, "failover", {"move": move.model_dump()}
    )


def _step(mover: Mover, run_id: str, host: str, step: str, ok: bool, detail: str = "") -> None:
    mover.journal.record(run_id, host, None, step, "ok" if ok else "error", detail)
    mover.report(f"{host}: {step}: {'ok' if ok else detail}")


def _restore_final(mover: Mover, run_id: str, name: str, snapshot: Snapshot, host: str) -> Restored:
    """Restore a switchover's final snapshot onto `host`: that one or none (zero loss);
    one that does not restore is a P1 on its backups, and the move is rolled back."""
    try:
        done = restore_in_place(mover.loaded, name, snapshot, host, mover.report)
    except BackupFailed as exc:
        unrestorable(mover.loaded, name, Candidate(snapshot), str(exc), mover.bus)
        raise
    _restored(mover, run_id, done, host)
    return done


def _restored(mover: Mover, run_id: str, done: Restored, host: str) -> None:
    """Journal a restore of a move, and hold its snapshot from retention (a generation)."""
    _step(
        mover,
        run_id,
        host,
        f"restore {done.policy} {done.snapshot.short_id}",
        True,
        f"{done.files} file(s) in {done.seconds:.1f}s",
    )
    why = f"restored onto {host} by a move (run {run_id})"
    Ledger(mover.journal).hold(mover.loaded.fleet, done.policy, done.snapshot.id, why, time.time())


def _final_backup(mover: Mover, run_id: str, host: str, name: str) -> Snapshot:
    """Run the policy's backup unit on `host` now; the snapshot it took."""
    remote = final_backup(mover.loaded.written.hosts[host], name, BACKUP_TIMEOUT_S)
    _step(mover, run_id, host, f"final backup {name}", remote.ok, remote.error)
    if not remote.ok or not remote.stdout.split():
        raise MoveFailed(f"final backup {name} on {host} failed: {remote.error}")
    try:  # recorded as the holder's, in the epoch in force until this move commits
        loaded = placed(mover.loaded, mover.journal)
        return record_reported(loaded, name, remote.stdout.split()[0], Ledger(mover.journal))
    except ProvenanceError as exc:
        raise MoveFailed(str(exc)) from None


def _stage(mover: Mover, move: Move, ssh: WarmWorker) -> list[str]:
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


def _staged(mover: Mover, run_id: str, move: Move, staging: Future[list[str]]) -> bool:
    """Wait for the staging; whether it deployed everything. A failed one is said, never
    fatal: the deploy after the commit converges whatever it left."""
    try:
        errors = staging.result()
    except Exception as exc:
        errors = [f"{type(exc).__name__}: {exc}"]
    detail = "; ".join(errors) or "deployed, not started"
    _step(mover, run_id, move.target, "stage (all but the start)", not errors, detail)
    return not errors


def _start_staged(mover: Mover, run_id: str, move: Move, ssh: WarmWorker) -> str | None:
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
    _step(mover, run_id, move.target, "start and health gate", error is None, error or "")
    return error


def _lease_target(mover: Mover, run_id: str, move: Move) -> None:
    seconds = int(mover.failover.fence_after.total_seconds())
    lease = set_lease(mover.loaded.written.hosts[move.target], move.epoch, seconds)
    _step(mover, run_id, move.target, f"lease (epoch {move.epoch})", lease.ok, lease.error)
    if not lease.ok:
        raise MoveFailed(f"could not give {move.target} its lease: {lease.error}")


def _commit(mover: Mover, state: FailoverState, move: Move, run_id: str, statement: str) -> None:
    """The decisive write: the new placement and epoch, in one commit."""
    target = None if move.target == mover.failover.primary else move.target
    now = time.time()
    mover.store.put(
        FailoverState(
            placement=Placement(active=target, epoch=move.epoch, since=now),
            since=now,
            reason=move.reason,
            last_contact=state.last_contact,
            data_loss=statement,
            move=move.model_copy(update={"step": "deploy"}),
        )
    )
    _step(mover, run_id, move.target, f"placement recorded (epoch {move.epoch})", True, statement)


def _finish(
    mover: Mover,
    move: Move,
    run_id: str,
    kind: EventKind,
    statement: str,
    restored: list[Restored],
    figures: dict[str, Any] | None = None,
    ssh: WarmWorker | None = None,
    start_first: bool = False,
) -> FailoverState:
    early = _start_staged(mover, run_id, move, ssh) if start_first and ssh else None
    loaded = placed(mover.loaded, mover.journal)
    runner = Runner(
        mover.client, mover.journal, mover.report, mover.progress, guard=mover.guard, ssh=ssh
    )
    # A promotion deploys on the backup alone: the primary is gone (and fenced).
    targets = [move.target] if move.kind == "failover" else [move.target, move.source]
    plan = plan_once(loaded, mover.client, worker=ssh, targets=targets).plan
    result = execute_plan(loaded, plan, runner, "apply", targets)
    errors = "; ".join(e for e in (early, result.errors if result else None) if e) or None
    _step(mover, run_id, move.target, "deploy and health gate", errors is None, errors or "")
    state = mover.store.get().model_copy(update={"move": None})
    mover.store.put(state)
    mover.journal.finish_run(run_id, "converged" if errors is None else "failed", errors)
    message = (
        f"{kind}: {', '.join(mover.failover.services)} moved {move.source} -> {move.target} "
        f"(epoch {move.epoch}): {move.reason}; {statement}"
    )
    mover.bus.emit(
        Event(
            "P0",
            kind,
            message,
            move.target,
            None,
            {
                "from": move.source,
                "to": move.target,
                "epoch": move.epoch,
                "data_loss": statement,
                "deploy_errors": errors,
                "restored": {r.policy: r.snapshot.short_id for r in restored},
                **(figures or {}),
            },
        )
    )
    return state


def _back_off(mover: Mover, why: str) -> None:
    """Count a rolled-back promotion and put off the next one (`retry_delay`)."""
    state = mover.store.get()
    attempts = state.attempts + 1
    retry_at = time.time() + retry_delay(attempts)
    mover.store.put(
        state.model_copy(update={"attempts": attempts, "retry_at": retry_at, "failure": why})
    )


def _roll_back(
    mover: Mover,
    move: Move,
    run_id: str,
    why: str,
    kind: EventKind | None = "failover_aborted",
    page: bool = True,
) -> None:
    """Undo a move whose placement was not recorded: the services stay at the source.
    Under the raised epoch when a host may have seen it (a switchover revokes the source
    first; a promotion leases the target last); a promotion rolled back before its
    lease leaves the epoch as it was, so hosts' epochs count moves, not attempts."""
    state = mover.store.get()
    unseen = move.kind == "failover" and move.step == "restore"
    epoch = state.placement.epoch if unseen else max(state.placement.epoch, move.epoch)
    placement = state.placement.model_copy(update={"epoch": epoch})
    mover.store.put(state.model_copy(update={"move": None, "placement": placement}))
    mover.journal.record(run_id, move.source, None, "rolled back", "error", why)
    mover.journal.finish_run(run_id, "failed", why)
    if kind is not None:
        mover.report(f"{move.kind} {move.source} -> {move.target} rolled back: {why}")
    if kind is not None and page:  # a promotion pages once an outage; retries are journaled
        retried = " (retried with backoff; further attempts are journaled, not paged)"
        mover.bus.emit(
            Event(
                "P0",
                kind,
                f"{move.kind} {move.source} -> {move.target} did not happen: {why}"
                + (retried if move.kind == "failover" else ""),
                move.source,
                None,
                {"epoch": epoch, "step": move.step},
            )
        )
