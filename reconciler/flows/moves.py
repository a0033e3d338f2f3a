"""Moves: promotion, failback and switchover, moving the failover services between the primary
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
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backups.restic_repo import Snapshot
from reconciler.apply.context import Runner
from reconciler.engine.failover_detection import (
    duration,
    retry_delay,
)
from reconciler.events.bus import Event, EventKind
from reconciler.flows.failover_data import (
    Candidate,
    DataLoss,
    data_plan,
    journal_restored,
    loss_figures,
    name_locks,
    restore_all,
    unrestorable,
)
from reconciler.flows.lifecycle import execute_plan
from reconciler.flows.mover import (
    BACKUP_TIMEOUT_S,
    MoveFailed,
    Mover,
    failpoint,
    journal_step,
)
from reconciler.flows.once import plan_once
from reconciler.flows.staging import stage, staged_result, start_staged
from reconciler.hosts.client import WarmWorker
from reconciler.hosts.commands import final_backup, set_lease, stop_units
from reconciler.repositories.in_place import Restored, restore_in_place
from reconciler.repositories.operations import BackupFailed
from reconciler.repositories.restorable import ProvenanceError, record_reported
from reconciler.store.failover_state import FailoverState, Move, MoveStep, placed
from reconciler.store.ledger import Ledger
from state.placement import Placement, data_policies


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
    failover = mover.failover
    try:
        plan = data_plan(mover.loaded, Ledger(mover.journal), lost_at)
        unlisted = [why for loss in plan.values() if loss.snapshot is None for why in loss.unlisted]
        if unlisted:  # not known to be lost: tried again on the next pass
            raise BackupFailed("; ".join(unlisted))
        accept = accept_data_loss or failover.data_loss == "allow"
        if not accept:
            _hold_beyond_rpo(mover, move, run_id, plan)
        with ThreadPoolExecutor(1, thread_name_prefix="stage") as pool:
            staging = pool.submit(stage, mover, move, ssh)
            try:
                restored = restore_all(mover, run_id, plan, accept, lost_at)
            finally:  # a move never rolls back while the target is being deployed
                staged_ok = staged_result(mover, run_id, move, staging)
        failpoint("failover:restored")
        move = _advance(mover, move, "lease")  # from here the target may know the epoch
        _lease_target(mover, run_id, move)
        failpoint("failover:leased")
        statement = "; ".join(loss.statement for loss in plan.values()) or "no data policies"
        statement += (
            f"; {failover.primary} may have written up to "
            f"{duration(failover.fence_after.total_seconds())} more before its lease lapsed"
        )
        _commit(mover, state, move, run_id, statement)
        failpoint("failover:committed")
    except (BackupFailed, OSError) as exc:
        _roll_back(mover, move, run_id, str(exc), page=state.attempts == 0)
        _back_off(mover, str(exc))
        raise MoveFailed(str(exc)) from None
    figures_context = {"lost_at": lost_at, "losses": loss_figures(plan)}
    moved = _finish(
        mover, move, run_id, "failover", statement, restored, figures_context, ssh, staged_ok
    )
    for name in plan:  # served: now the locks the restore read past are named
        name_locks(mover.loaded, name, mover.bus)
    return moved


def _hold_beyond_rpo(mover: Mover, move: Move, run_id: str, plan: dict[str, DataLoss]) -> None:
    """`data_loss: hold`: a promotion that would lose more than a policy's RPO is rolled
    back and held (P0) until a person accepts the loss. Raises MoveFailed then."""
    over = [loss.statement for loss in plan.values() if not loss.within_rpo]
    if not over:
        return
    failover, store = mover.failover, mover.store
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
        journal_step(mover, run_id, source, "stop services", stopped.ok, stopped.error)
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
        journal_step(
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


def _restore_final(mover: Mover, run_id: str, name: str, snapshot: Snapshot, host: str) -> Restored:
    """Restore a switchover's final snapshot onto `host`: that one or none (zero loss);
    one that does not restore is a P1 on its backups, and the move is rolled back."""
    try:
        done = restore_in_place(mover.loaded, name, snapshot, host, mover.report)
    except BackupFailed as exc:
        unrestorable(mover.loaded, name, Candidate(snapshot), str(exc), mover.bus)
        raise
    journal_restored(mover, run_id, done, host)
    return done


def _final_backup(mover: Mover, run_id: str, host: str, name: str) -> Snapshot:
    """Run the policy's backup unit on `host` now; the snapshot it took."""
    remote = final_backup(mover.loaded.written.hosts[host], name, BACKUP_TIMEOUT_S)
    journal_step(mover, run_id, host, f"final backup {name}", remote.ok, remote.error)
    if not remote.ok or not remote.stdout.split():
        raise MoveFailed(f"final backup {name} on {host} failed: {remote.error}")
    try:  # recorded as the holder's, in the epoch in force until this move commits
        loaded = placed(mover.loaded, mover.journal)
        return record_reported(loaded, name, remote.stdout.split()[0], Ledger(mover.journal))
    except ProvenanceError as exc:
        raise MoveFailed(str(exc)) from None


def _lease_target(mover: Mover, run_id: str, move: Move) -> None:
    seconds = int(mover.failover.fence_after.total_seconds())
    lease = set_lease(mover.loaded.written.hosts[move.target], move.epoch, seconds)
    journal_step(mover, run_id, move.target, f"lease (epoch {move.epoch})", lease.ok, lease.error)
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
    journal_step(
        mover, run_id, move.target, f"placement recorded (epoch {move.epoch})", True, statement
    )


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
    early = start_staged(mover, run_id, move, ssh) if start_first and ssh else None
    loaded = placed(mover.loaded, mover.journal)
    runner = Runner(
        mover.client, mover.journal, mover.report, mover.progress, guard=mover.guard, ssh=ssh
    )
    # A promotion deploys on the backup alone: the primary is gone (and fenced).
    targets = [move.target] if move.kind == "failover" else [move.target, move.source]
    plan = plan_once(loaded, mover.client, worker=ssh, targets=targets).plan
    result = execute_plan(loaded, plan, runner, "apply", targets)
    errors = "; ".join(e for e in (early, result.errors if result else None) if e) or None
    journal_step(mover, run_id, move.target, "deploy and health gate", errors is None, errors or "")
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
