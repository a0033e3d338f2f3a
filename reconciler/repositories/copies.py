"""A policy's copies: further repositories the controller fills with `restic copy`.

Only the controller reaches a copy and holds its password, and it copies only the
snapshots it recorded (reconciler.repositories.restorable), by ID: a forged snapshot never
reaches a copy. A snapshot in a copy counts when the controller's own copy wrote it: it
carries `original` naming the recorded snapshot, and the same tree (the content's
hash, kept by a copy initialised with the repository's chunker parameters), host and
time. Those are recorded in the ledger under the copy's URL; a restore, a rebuild or a
drill from a copy chooses among them only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from backups.repository import open_copy, open_repository
from backups.restic_repo import RepositoryMissing, ResticError, ResticRepo, Snapshot
from reconciler.apply.context import Report
from reconciler.repositories.operations import BackupFailed
from reconciler.repositories.restorable import ProvenanceError, restorable
from reconciler.store.ledger import COPY_OF, Entry, Ledger
from state.load import LoadedFleet
from state.secrets import SecretUnavailable


@dataclass(frozen=True)
class Copied:
    """One copy run: the snapshots newly recorded in the copy, and how many it keeps."""

    policy: str
    copy: str
    new: list[Entry]
    kept: int
    seconds: float


def copy_now(loaded: LoadedFleet, name: str, copy: str, ledger: Ledger, report: Report) -> Copied:
    """Copy every recorded snapshot of `name` that the copy lacks, record what the copy
    wrote, then apply retention there. Raises BackupFailed with one line."""
    policy = loaded.fleet.backups[name]
    spec = policy.copies[copy]
    started = time.monotonic()
    try:
        source, target = open_repository(loaded.fleet, name), open_copy(loaded.fleet, name, copy)
        recorded = restorable(loaded, name, ledger)
        _open_or_init(target, source, spec.init, f"copy {copy} ({spec.repository})", report)
        done = {e.copy_of for e in ledger.recorded(loaded.fleet, name, copy)}
        todo = [s for s in recorded if s.id not in done]
        if todo:
            report(f"backup {name}: copying {len(todo)} recorded snapshot(s) to copy {copy}")
        target.copy_from(source, [s.id for s in todo])
        listed = target.snapshots(tag=name)
        new = record_copies(loaded, name, copy, ledger, recorded, listed)
        held = _held_copies(loaded, name, copy, ledger)
        target.forget(
            spec.retention or policy.retention,
            tag=name,
            host=policy.host,
            on_locked=lambda waiting: report(f"backup {name}: copy {copy}: {waiting}"),
            keep=frozenset(held),
        )
        still = target.snapshots(tag=name)
        ledger.gone(loaded.fleet, name, {s.id for s in still}, copy)
        kept = len(still)
    except (SecretUnavailable, ResticError, ProvenanceError) as exc:
        raise BackupFailed(f"backup {name}: copy {copy} failed: {exc}") from None
    return Copied(name, copy, new, kept, time.monotonic() - started)


def record_copies(
    loaded: LoadedFleet,
    name: str,
    copy: str,
    ledger: Ledger,
    recorded: list[Snapshot],
    listed: list[Snapshot],
) -> list[Entry]:
    """Record each snapshot the copy lists that is a faithful copy of a recorded one
    (`original`, tree, host and time all match); the new entries, oldest first."""
    sources = {s.id: s for s in recorded}
    known = {e.snapshot_id for e in ledger.entries(loaded.fleet, name, copy)}
    by_id = {e.snapshot_id: e for e in ledger.recorded(loaded.fleet, name)}
    new = []
    now = time.time()
    for snap in sorted(listed, key=lambda s: s.time):
        origin = sources.get(snap.original or "")
        if snap.id in known or origin is None or not _faithful(snap, origin):
            continue
        entry = by_id[origin.id]
        copied = Entry(
            snap.id,
            "recorded",
            entry.host,
            entry.epoch,
            entry.snapshot_time,
            now,
            f"{COPY_OF}{origin.id}",
        )
        if ledger.add(loaded.fleet, name, copied, copy):
            new.append(copied)
    return new


def _faithful(copied: Snapshot, origin: Snapshot) -> bool:
    return (
        bool(copied.tree)
        and copied.tree == origin.tree
        and copied.host == origin.host
        and copied.time == origin.time
    )


def _held_copies(loaded: LoadedFleet, name: str, copy: str, ledger: Ledger) -> set[str]:
    """The copy's snapshots of held generations (reconciler.store.ledger.hold)."""
    held = set(ledger.held(loaded.fleet, name))
    return {e.snapshot_id for e in ledger.recorded(loaded.fleet, name, copy) if e.copy_of in held}


def _open_or_init(
    target: ResticRepo, source: ResticRepo, init: bool, what: str, report: Report
) -> None:
    try:
        target.snapshots(tag="-")
    except RepositoryMissing:
        if not init:
            raise BackupFailed(
                f"{what} is not initialised; set init: true or run restic init"
            ) from None
        target.init_copy_of(source)
        report(f"initialised {what} with the repository's chunker parameters")
