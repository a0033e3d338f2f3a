"""Keeping the snapshot ledger, and choosing restorable snapshots from it.

`record_observed` judges what a pass's observation listed (`reconciler.engine.snapshot_judgement`)
and keeps the verdicts; `record_reported` does the same for a backup the controller ran
and whose ID the host printed. `restorable` is the only source of snapshots a restore,
a drill, a failover or a failback may use: the ones recorded, still in the repository,
the most recently recorded last. `announce_forged` raises each forged snapshot's P1 once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from backups.repository import open_copy, open_repository
from backups.restic_repo import ResticError, Snapshot
from reconciler.engine.diff_backups import RestoreSource
from reconciler.engine.snapshot_judgement import holder, judge
from reconciler.events.bus import Event, EventBus
from reconciler.hosts.observation import FleetState, SnapshotClaim
from reconciler.hosts.snapshots import claim_of, reported_id
from reconciler.store.ledger import Entry, Ledger
from reconciler.untrusted.limits import MAX_CLAIMS
from reconciler.untrusted.text import shown
from state.load import LoadedFleet
from state.secrets import SecretUnavailable


class ProvenanceError(RuntimeError):
    """The repository could not be listed to confirm a snapshot."""


def record_observed(
    loaded: LoadedFleet, observed: FleetState, ledger: Ledger, keep: bool = True
) -> list[Entry]:
    """Judge the snapshots each repository listed in `observed`; the new entries, kept
    in the ledger unless `keep` is False (a dry run shows what an apply would record)."""
    new: list[Entry] = []
    now = observed.observed_at or datetime.now(UTC)
    for name, state in observed.backups.items():
        if not state.listed or state.error:
            continue
        host = observed.hosts.get(loaded.fleet.backups[name].host)
        reported = reported_id(host, name) if host is not None else None
        new += _judge(loaded, ledger, name, list(state.claims), reported, now, keep)
        if keep and len(state.claims) < MAX_CLAIMS:  # listed in full
            ledger.gone(loaded.fleet, name, {c.id for c in state.claims})
    return new


def credit_recorded(
    loaded: LoadedFleet, observed: FleetState, ledger: Ledger, new: list[Entry]
) -> FleetState:
    """`observed` with each listed policy's newest snapshot (its RPO) taken from the
    recorded ones only (the ledger's, and the `new` entries just judged): a host that
    writes snapshots the controller did not record cannot make its backups look fresh."""
    credited = {}
    fresh = {e.snapshot_id for e in new if e.verdict == "recorded"}
    for name, state in observed.backups.items():
        if not state.listed or state.error:
            credited[name] = state
            continue
        recorded = fresh | {e.snapshot_id for e in ledger.recorded(loaded.fleet, name)}
        claims = [c for c in state.claims if c.id in recorded]
        newest = max(claims, key=lambda c: c.time, default=None)
        credited[name] = state.model_copy(
            update={
                "last_snapshot": newest.time if newest else None,
                "newest_id": newest.id if newest else None,
                "snapshots": len(claims),
            }
        )
    return observed.model_copy(update={"backups": credited})


def record_reported(loaded: LoadedFleet, name: str, reported: str, ledger: Ledger) -> Snapshot:
    """Record the snapshot the policy's host just printed for a backup the controller ran
    there; the snapshot, once recorded. Raises ProvenanceError when the repository does
    not list it with claims that fit."""
    listed = _listed(loaded, name)
    claims = [claim_of(s) for s in listed]
    _judge(loaded, ledger, name, claims, reported, datetime.now(UTC))
    recorded = {e.snapshot_id for e in ledger.recorded(loaded.fleet, name)}
    for snap in listed:
        if snap.id.startswith(reported) and snap.id in recorded:
            return snap
    raise ProvenanceError(
        f"backup {name}: snapshot {shown(reported[:16])} reported by "
        f"{loaded.fleet.backups[name].host} is not one "
        "the repository lists with fitting claims; it is not recorded"
    )


def restorable(
    loaded: LoadedFleet, name: str, ledger: Ledger, copy: str | None = None
) -> list[Snapshot]:
    """The policy's recorded snapshots still in the repository, the most recently
    recorded last (or, of its copy `copy`, the oldest first). Raises ProvenanceError
    when the repository cannot be listed."""
    if copy is not None:
        return _copy_restorable(loaded, name, copy, ledger)
    listed = {s.id: s for s in _listed(loaded, name)}
    return [
        listed[e.snapshot_id]
        for e in ledger.recorded(loaded.fleet, name)
        if e.snapshot_id in listed
    ]


def _copy_restorable(loaded: LoadedFleet, name: str, copy: str, ledger: Ledger) -> list[Snapshot]:
    """The copy's recorded snapshots still in it, oldest first. Raises ProvenanceError."""
    try:
        listed = {s.id: s for s in open_copy(loaded.fleet, name, copy).snapshots(tag=name)}
    except (SecretUnavailable, ResticError) as exc:
        raise ProvenanceError(f"backup {name}: copy {copy}: cannot list snapshots: {exc}") from None
    entries = ledger.recorded(loaded.fleet, name, copy)
    found = [listed[e.snapshot_id] for e in entries if e.snapshot_id in listed]
    return sorted(found, key=lambda s: s.time)


def rebuild_source(
    loaded: LoadedFleet, ledger: Ledger, name: str, repository_lost: bool = False
) -> RestoreSource | None:
    """The snapshot a rebuild of the policy's data would restore: the newest recorded
    (the apply confirms it is still in the repository); when the repository cannot be
    read (`repository_lost`), the newest recorded in a copy, if any."""
    recorded = ledger.recorded(loaded.fleet, name)
    copied = newest_copy(loaded, ledger, name) if repository_lost else None
    if copied is not None:
        copy, entry = copied
        return RestoreSource(entry.snapshot_id, _taken(entry), copy)
    if not recorded:
        return None
    return RestoreSource(recorded[-1].snapshot_id, _taken(recorded[-1]))


def newest_copies(loaded: LoadedFleet, ledger: Ledger, name: str) -> dict[str, Entry]:
    """The newest snapshot recorded in each of the policy's copies that holds one, the
    newest first (from the ledger alone: the plan asks on every pass)."""
    found = {
        copy: max(entries, key=lambda e: e.snapshot_time)
        for copy in loaded.fleet.backups[name].copies
        if (entries := ledger.recorded(loaded.fleet, name, copy))
    }
    return dict(sorted(found.items(), key=lambda pair: -pair[1].snapshot_time))


def newest_copy(loaded: LoadedFleet, ledger: Ledger, name: str) -> tuple[str, Entry] | None:
    """The newest snapshot recorded in any of the policy's copies, with its copy's name."""
    return next(iter(newest_copies(loaded, ledger, name).items()), None)


def copies_taken(loaded: LoadedFleet, ledger: Ledger, name: str) -> dict[str, datetime | None]:
    """When the newest snapshot recorded in each of the policy's copies was taken."""
    newest = newest_copies(loaded, ledger, name)
    return {
        copy: _taken(newest[copy]) if copy in newest else None
        for copy in loaded.fleet.backups[name].copies
    }


def _taken(entry: Entry) -> datetime:
    return datetime.fromtimestamp(entry.snapshot_time, UTC)


def announce_forged(ledger: Ledger, bus: EventBus) -> int:
    """Raise a P1 `backup_forged` for each forged snapshot not announced yet; how many."""
    pending = ledger.unannounced()
    for policy, entry in pending:
        bus.emit(
            Event(
                "P1",
                "backup_forged",
                f"backup {policy}: snapshot {entry.short_id} is forged and will never be "
                f"restored: {shown(entry.reason)}",
                None,
                f"backup:{policy}",
                {"snapshot": entry.snapshot_id, "claimed_host": shown(entry.host)},
            )
        )
        ledger.announced(policy, entry.snapshot_id)
    return len(pending)


def _listed(loaded: LoadedFleet, name: str) -> list[Snapshot]:
    try:
        return open_repository(loaded.fleet, name).snapshots(tag=name)
    except (SecretUnavailable, ResticError) as exc:
        raise ProvenanceError(f"backup {name}: cannot list snapshots: {exc}") from None


def _judge(
    loaded: LoadedFleet,
    ledger: Ledger,
    name: str,
    claims: list[SnapshotClaim],
    reported: str | None,
    now: datetime,
    keep: bool = True,
) -> list[Entry]:
    """Judge `claims` against the policy's holder now; the new verdicts, kept in the
    ledger when `keep`."""
    who = holder(loaded.written, loaded.fleet, loaded.placement, name)
    entries = judge(claims, who, reported, ledger.judged(loaded.fleet, name), now)
    return [e for e in entries if not keep or ledger.add(loaded.fleet, name, e)]
