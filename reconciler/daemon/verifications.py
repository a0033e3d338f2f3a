"""Scheduled backup verification for `reconcile watch`: checks and restore drills when due.

Due-ness comes from the journal's own record of the last check and drill of each
policy (found by event kind), so a restarted daemon does not repeat them. Outcomes
are events: P3 when they pass, P1 when they fail.
"""

from __future__ import annotations

from datetime import timedelta

from reconciler.backup.verify import DrillResult, check_repository, rotating_subset, run_drill
from reconciler.events.bus import Event, EventBus, EventKind
from reconciler.store.journal import EventRecord, Journal
from reconciler.store.ledger import Ledger
from state.layout import backup_service_id
from state.load import LoadedFleet

CHECK_KINDS: tuple[EventKind, ...] = ("backup_check_passed", "backup_check_failed")
DRILL_KINDS: tuple[EventKind, ...] = ("drill_passed", "drill_failed")


def is_due(last_at: float | None, every: timedelta, now: float) -> bool:
    return last_at is None or now - last_at >= every.total_seconds()


def last_event(journal: Journal, kinds: tuple[EventKind, ...], policy: str) -> EventRecord | None:
    """The newest event of one of `kinds` about `policy`, or None."""
    service = backup_service_id(policy)
    found = [e for kind in kinds for e in journal.events(500, kind, service=service)]
    return max(found, key=lambda e: e.at, default=None)


def checked(loaded: LoadedFleet, name: str, bus: EventBus, subset: str) -> str | None:
    """Run `restic check` on `subset`; emit the verdict; return the error or None."""
    policy = loaded.fleet.backups[name]
    error = check_repository(loaded, name, subset)
    service = backup_service_id(name)
    context = {"subset": subset}
    if error is None:
        message = f"backup {name}: check {subset} ok"
        bus.emit(Event("P3", "backup_check_passed", message, policy.host, service, context))
    else:
        message = f"backup {name}: repository check failed: {error}"
        bus.emit(Event("P1", "backup_check_failed", message, policy.host, service, context))
    return error


def drilled(
    loaded: LoadedFleet, name: str, bus: EventBus, ledger: Ledger
) -> tuple[DrillResult, str]:
    """Run a restore drill; emit the verdict; return the result and its one-line summary."""
    policy = loaded.fleet.backups[name]
    result = run_drill(loaded, name, ledger)
    if result.ok:  # a newer generation is proven: older held snapshots may go
        ledger.drilled(loaded.fleet, name, result.snapshot)
    verdict = "passed" if result.ok else "FAILED"
    rto = f", RTO {result.rto_seconds:g}s" if result.rto_seconds is not None else ""
    message = (
        f"backup {name}: drill {verdict}: restored snapshot {result.snapshot} "
        f"({result.files} files) in {result.seconds:.1f}s{rto}"
    )
    bus.emit(
        Event(
            "P3" if result.ok else "P1",
            "drill_passed" if result.ok else "drill_failed",
            message,
            policy.host,
            backup_service_id(name),
            {
                "snapshot": result.snapshot,
                "seconds": round(result.seconds, 2),
                "files": result.files,
                "rto_seconds": result.rto_seconds,
                "problems": result.problems,
            },
        )
    )
    return result, message


def run_due_verifications(
    loaded: LoadedFleet, journal: Journal, bus: EventBus, now: float
) -> list[str]:
    """Run every check and drill that is due; return one line per verification run."""
    done = []
    for name, policy in loaded.fleet.backups.items():
        last_check = last_event(journal, CHECK_KINDS, name)
        if is_due(last_check.at if last_check else None, policy.check_every, now):
            subset = rotating_subset()
            error = checked(loaded, name, bus, subset)
            done.append(f"backup {name}: check {subset} {'ok' if error is None else 'FAILED'}")
        last_drill = last_event(journal, DRILL_KINDS, name)
        if is_due(last_drill.at if last_drill else None, policy.drill_every, now):
            done.append(drilled(loaded, name, bus, Ledger(journal))[1])
    return done
