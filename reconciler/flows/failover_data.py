"""The data a promotion brings to the backup: which snapshot of each data policy, what
loss that is, and what to try when it does not restore.

A promotion degrades, never stalls on one bad snapshot or one lost repository: for each
data policy it tries the newest recorded snapshots of the repository, newest first (at
most `NEWER_TRIES` of them), then the newest recorded snapshot of each copy. The first
that restores is the data; the statement names it, where it came from, and what newer
one did not restore. Each snapshot that does not restore is a P1 on its backups.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from backups.repository import open_copy, open_repository
from backups.restic_repo import ResticError, ResticRepo, Snapshot
from reconciler.apply.context import Report
from reconciler.engine.failover_detection import duration
from reconciler.events.bus import Event, EventBus
from reconciler.flows.mover import Mover, journal_step
from reconciler.repositories.in_place import Restored, restore_in_place
from reconciler.repositories.operations import BackupFailed
from reconciler.repositories.restorable import ProvenanceError, restorable
from reconciler.store.ledger import Ledger
from state.load import LoadedFleet
from state.placement import data_policies
from state.secrets import SecretUnavailable

NEWER_TRIES = 3
"""How many of the repository's recorded snapshots a promotion tries, newest first."""


@dataclass(frozen=True)
class Candidate:
    """A recorded snapshot a promotion may restore, from the repository or a copy."""

    snapshot: Snapshot
    copy: str | None = None

    @property
    def where(self) -> str:
        return f"snapshot {self.snapshot.short_id}" + (f" of copy {self.copy}" if self.copy else "")


@dataclass(frozen=True)
class DataLoss:
    """What a promotion restores for one data policy, and the loss it states."""

    snapshot: Snapshot | None
    statement: str
    within_rpo: bool
    seconds: float | None = None  # the snapshot's age when the primary was lost
    candidates: tuple[Candidate, ...] = ()
    """What may be restored, in the order it is tried (the first is `snapshot`)."""
    unlisted: tuple[str, ...] = ()
    """Why a repository or copy could not be listed (it then offers nothing)."""


def candidates(loaded: LoadedFleet, name: str, ledger: Ledger) -> tuple[list[Candidate], list[str]]:
    """The snapshots of policy `name` to try, in order, and why any store was unlisted."""
    found: list[Candidate] = []
    unlisted: list[str] = []
    try:
        recorded = restorable(loaded, name, ledger)
        found += [Candidate(s) for s in reversed(recorded[-NEWER_TRIES:])]
    except ProvenanceError as exc:
        unlisted.append(str(exc))
    for copy in loaded.written.backups[name].copies:
        try:
            copied = restorable(loaded, name, ledger, copy)
        except ProvenanceError as exc:
            unlisted.append(str(exc))
            continue
        if copied:
            found.append(Candidate(copied[-1], copy))
    return found, unlisted


def data_plan(loaded: LoadedFleet, ledger: Ledger, lost_at: float) -> dict[str, DataLoss]:
    """Per data policy: the snapshot to restore first, the stated loss, and the RPO."""
    return {
        name: loss_of(loaded, name, *candidates(loaded, name, ledger), lost_at)
        for name in data_policies(loaded.written)
    }


def loss_of(
    loaded: LoadedFleet,
    name: str,
    found: list[Candidate],
    unlisted: list[str],
    lost_at: float,
    failed: tuple[str, ...] = (),
) -> DataLoss:
    """The loss restoring `found[0]` states (`failed`: what newer did not restore)."""
    rpo = loaded.written.backups[name].rpo.total_seconds()
    notes = "".join(f"; {why}" for why in (*failed, *unlisted))
    if not found:
        line = f"{name}: no snapshot to restore; RPO {duration(rpo)}: all data lost{notes}"
        return DataLoss(None, line, False, unlisted=tuple(unlisted))
    first = found[0]
    age = max(0.0, lost_at - first.snapshot.time.timestamp())
    within = age <= rpo
    line = (
        f"{name}: data from {first.where} taken {duration(age)} before the primary was "
        f"lost; RPO {duration(rpo)}: " + ("within objective" if within else "OVER objective")
    )
    return DataLoss(first.snapshot, line + notes, within, age, tuple(found), tuple(unlisted))


def restore_best(
    loaded: LoadedFleet,
    name: str,
    loss: DataLoss,
    host: str,
    ledger: Ledger,
    bus: EventBus,
    report: Report,
    lost_at: float,
    restore: Callable[..., Restored] = restore_in_place,
) -> tuple[Restored, DataLoss]:
    """Restore the first of `loss.candidates` that restores onto `host`; the restored
    snapshot and the loss restated for it. Raises BackupFailed when none does."""
    failed: list[str] = []
    for i, candidate in enumerate(loss.candidates):
        try:
            repository = open_copy(loaded.fleet, name, candidate.copy) if candidate.copy else None
            restored = restore(loaded, name, candidate.snapshot, host, report, repository)
        except (BackupFailed, SecretUnavailable, ResticError) as exc:
            failed.append(f"{candidate.where} did not restore: {exc}")
            unrestorable(loaded, name, candidate, str(exc), bus)
            continue
        rest = list(loss.candidates[i:])
        return restored, loss_of(loaded, name, rest, list(loss.unlisted), lost_at, tuple(failed))
    tried = "; ".join(failed) or "no recorded snapshot"
    raise BackupFailed(f"backup {name}: nothing restores: {tried}")


def nothing_restored(loaded: LoadedFleet, name: str, why: str) -> DataLoss:
    """The loss a promotion states when it goes ahead (`data_loss: allow`, or the
    operator's `--accept-data-loss`) though no snapshot of `name` restored."""
    rpo = loaded.written.backups[name].rpo.total_seconds()
    line = f"{name}: nothing restored; RPO {duration(rpo)}: all data lost ({why})"
    return DataLoss(None, line, False)


def unrestorable(
    loaded: LoadedFleet, name: str, candidate: Candidate, why: str, bus: EventBus
) -> None:
    """A snapshot that does not restore: the P1 a failed drill opens, on its backups."""
    bus.emit(
        Event(
            "P1",
            "drill_failed",
            f"backup {name}: {candidate.where} does not restore: {why}",
            loaded.written.backups[name].host,
            f"backup:{name}",
            {
                "snapshot": candidate.snapshot.short_id,
                "copy": candidate.copy,
                "during": "failover restore",
                "at": time.time(),
            },
        )
    )


def name_locks(
    loaded: LoadedFleet, name: str, bus: EventBus, repository: ResticRepo | None = None
) -> None:
    """After a promotion read policy `name`'s repository lock-free: a P1 naming each
    lock left in it (the lost primary's, typically), since retention will wait on them
    until restic proves them stale. Nothing when it holds none or cannot be read."""
    try:
        held = (repository or open_repository(loaded.fleet, name)).locks()
    except (ResticError, SecretUnavailable):
        return
    if not held:
        return
    bus.emit(
        Event(
            "P1",
            "backup_locked",
            f"backup {name}: the repository holds "
            + "; ".join(lock.described() for lock in held)
            + ": the failover read past it lock-free; retention waits until restic proves "
            "it stale (30 minutes unrefreshed by a live process)",
            loaded.written.backups[name].host,
            f"backup:{name}",
            {"locks": [lock.id[:8] for lock in held]},
        )
    )


def restore_all(
    mover: Mover, run_id: str, plan: dict[str, DataLoss], accept: bool, lost_at: float
) -> list[Restored]:
    """Restore each policy's best snapshot on the backup, updating `plan` with what was
    restored; a failed restore raises BackupFailed unless data loss is accepted."""
    backup, restored = mover.failover.backup, []
    for name, loss in list(plan.items()):
        if loss.snapshot is None:
            continue
        try:
            done, plan[name] = restore_best(
                mover.loaded, name, loss, backup, Ledger(mover.journal),
                mover.bus, mover.report, lost_at,
            )  # fmt: skip
        except BackupFailed as exc:
            if not accept:
                raise BackupFailed(f"{exc} (data_loss: hold)") from None
            plan[name] = nothing_restored(mover.loaded, name, str(exc))
            journal_step(mover, run_id, backup, f"restore {name}", False, plan[name].statement)
            continue
        journal_restored(mover, run_id, done, backup)
        restored.append(done)
    return restored


def journal_restored(mover: Mover, run_id: str, done: Restored, host: str) -> None:
    """Journal a restore of a move, and hold its snapshot from retention (a generation)."""
    journal_step(
        mover,
        run_id,
        host,
        f"restore {done.policy} {done.snapshot.short_id}",
        True,
        f"{done.files} file(s) in {done.seconds:.1f}s",
    )
    why = f"restored onto {host} by a move (run {run_id})"
    Ledger(mover.journal).hold(mover.loaded.fleet, done.policy, done.snapshot.id, why, time.time())


def loss_figures(plan: dict[str, DataLoss]) -> dict[str, dict[str, float | str | None]]:
    return {
        name: {
            "snapshot": loss.snapshot.id if loss.snapshot else None,
            "snapshot_at": loss.snapshot.time.timestamp() if loss.snapshot else None,
            "seconds": loss.seconds,
        }
        for name, loss in plan.items()
    }
