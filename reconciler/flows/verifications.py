"""Scheduled backup verification for `reconcile watch`: checks and restore drills when due.

Due-ness comes from the journal's own record of the last check and drill of each
policy (found by event kind), so a restarted daemon does not repeat them, and with etcd
from the fleet's (reconciler.store.schedule), so a new leader does not either. Outcomes
are events: P3 when they pass, P1 when they fail.
"""

from __future__ import annotations

import time
from datetime import timedelta

from reconciler.events.bus import Event, EventBus, EventKind
from reconciler.events.verification_events import CHECK_KINDS, COPY_KINDS, DRILL_KINDS, last_event
from reconciler.repositories.copies import copy_now
from reconciler.repositories.operations import BackupFailed
from reconciler.repositories.verify import DrillResult, check_repository, rotating_subset, run_drill
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from reconciler.store.schedule import Ran, Schedule
from state.layout import backup_service_id, copy_service_id
from state.load import LoadedFleet

COPY_RETRY = timedelta(minutes=15)
"""A copy that failed is tried again this soon, not a whole `every` later."""


def is_due(last_at: float | None, every: timedelta, now: float) -> bool:
    return last_at is None or now - last_at >= every.total_seconds()


def copy_is_due(last: Ran | None, every: timedelta, now: float) -> bool:
    """A copy is filled `every` after the last fill, or `COPY_RETRY` after a failed one."""
    if last is None:
        return True
    return is_due(last.at, every if last.ok else min(every, COPY_RETRY), now)


def last_ran(
    journal: Journal,
    schedule: Schedule,
    kind: str,
    kinds: tuple[EventKind, ...],
    name: str,
    copy: str | None = None,
) -> Ran | None:
    """When a verification of `name` (or of its copy) last ran: this journal's record,
    or the fleet's when a controller before this one ran it later."""
    event = last_event(journal, kinds, name, copy)
    local = Ran(event.at, not event.kind.endswith("_failed")) if event else None
    return schedule.last(kind, subject(name, copy), local)


def subject(name: str, copy: str | None = None) -> str:
    return name if copy is None else f"{name}:{copy}"


def checked(
    loaded: LoadedFleet, name: str, bus: EventBus, subset: str, copy: str | None = None
) -> str | None:
    """Run `restic check` on `subset` (of the copy `copy`); emit the verdict; return the
    error or None."""
    policy = loaded.fleet.backups[name]
    notes: list[str] = []
    error = check_repository(loaded, name, subset, copy, notes.append)
    service = backup_service_id(name) if copy is None else copy_service_id(name, copy)
    context = {"subset": subset, "copy": copy}
    what = f"backup {name}" + (f" copy {copy}" if copy else "")
    if error is None:
        message = f"{what}: check {subset} ok" + "".join(f" ({note})" for note in notes)
        bus.emit(Event("P3", "backup_check_passed", message, policy.host, service, context))
    else:
        message = f"{what}: repository check failed: {error}"
        bus.emit(Event("P1", "backup_check_failed", message, policy.host, service, context))
    return error


def copied(
    loaded: LoadedFleet, name: str, copy: str, bus: EventBus, ledger: Ledger
) -> tuple[str, bool]:
    """Fill the copy; emit the verdict (P3, or P1 when it failed); its one-line summary
    and whether it worked."""
    policy = loaded.fleet.backups[name]
    service = copy_service_id(name, copy)
    try:
        done = copy_now(loaded, name, copy, ledger, lambda _line: None)
    except BackupFailed as exc:
        bus.emit(Event("P1", "backup_copy_failed", str(exc), policy.host, service, {}))
        return str(exc), False
    message = (
        f"backup {name}: copy {copy}: {len(done.new)} snapshot(s) copied, "
        f"{done.kept} kept, in {done.seconds:.1f}s"
    )
    context = {"copied": [e.snapshot_id for e in done.new], "kept": done.kept}
    bus.emit(Event("P3", "backup_copied", message, policy.host, service, context))
    return message, True


def drilled(
    loaded: LoadedFleet, name: str, bus: EventBus, ledger: Ledger, copy: str | None = None
) -> tuple[DrillResult, str]:
    """Run a restore drill (of the copy `copy`); emit the verdict; return the result and
    its one-line summary."""
    policy = loaded.fleet.backups[name]
    result = run_drill(loaded, name, ledger, copy)
    if result.ok and copy is None:  # a newer generation is proven: older held ones may go
        ledger.drilled(loaded.fleet, name, result.snapshot)
    verdict = "passed" if result.ok else "FAILED"
    rto = f", RTO {result.rto_seconds:g}s" if result.rto_seconds is not None else ""
    what = f"backup {name}" + (f" copy {copy}" if copy else "")
    if result.snapshot:
        message = (
            f"{what}: drill {verdict}: restored snapshot {result.snapshot} "
            f"({result.files} files) in {result.seconds:.1f}s{rto}"
        )
    else:  # it never restored: the listing, the ledger or the secret failed
        message = f"{what}: drill {verdict}: no snapshot restored"
    if result.problems:
        message += ": " + "; ".join(result.problems)
    bus.emit(
        Event(
            "P3" if result.ok else "P1",
            "drill_passed" if result.ok else "drill_failed",
            message,
            policy.host,
            backup_service_id(name) if copy is None else copy_service_id(name, copy),
            {
                "copy": copy,
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
    loaded: LoadedFleet,
    journal: Journal,
    bus: EventBus,
    now: float,
    schedule: Schedule | None = None,
) -> list[str]:
    """Run every check and drill that is due; return one line per verification run.
    `schedule`: the fleet's record too (with etcd), kept up to date as each one runs."""
    schedule = schedule or Schedule(None)
    done = []
    for name, policy in loaded.fleet.backups.items():
        last = last_ran(journal, schedule, "check", CHECK_KINDS, name)
        if is_due(last.at if last else None, policy.check_every, now):
            subset = rotating_subset()
            error = checked(loaded, name, bus, subset)
            schedule.ran("check", name, time.time(), error is None, policy.host)
            done.append(f"backup {name}: check {subset} {'ok' if error is None else 'FAILED'}")
        last = last_ran(journal, schedule, "drill", DRILL_KINDS, name)
        if is_due(last.at if last else None, policy.drill_every, now):
            result, line = drilled(loaded, name, bus, Ledger(journal))
            schedule.ran("drill", name, time.time(), result.ok, policy.host)
            done.append(line)
        for copy in policy.copies:
            done += _copy_verifications(loaded, name, copy, journal, bus, now, schedule)
    return done


def _copy_verifications(
    loaded: LoadedFleet,
    name: str,
    copy: str,
    journal: Journal,
    bus: EventBus,
    now: float,
    schedule: Schedule,
) -> list[str]:
    """The copy filled, checked and drilled, each when due, each from its own record."""
    spec, done, which = loaded.fleet.backups[name].copies[copy], [], subject(name, copy)
    host = loaded.fleet.backups[name].host  # its shard's leader records the runs
    if copy_is_due(last_ran(journal, schedule, "copy", COPY_KINDS, name, copy), spec.every, now):
        line, ok = copied(loaded, name, copy, bus, Ledger(journal))
        schedule.ran("copy", which, time.time(), ok, host)
        done.append(line)
    last = last_ran(journal, schedule, "check", CHECK_KINDS, name, copy)
    if is_due(last.at if last else None, spec.check_every, now):
        subset = rotating_subset()
        error = checked(loaded, name, bus, subset, copy)
        schedule.ran("check", which, time.time(), error is None, host)
        done.append(
            f"backup {name} copy {copy}: check {subset} {'ok' if error is None else 'FAILED'}"
        )
    last = last_ran(journal, schedule, "drill", DRILL_KINDS, name, copy)
    if is_due(last.at if last else None, spec.drill_every, now):
        result, line = drilled(loaded, name, bus, Ledger(journal), copy)
        schedule.ran("drill", which, time.time(), result.ok, host)
        done.append(line)
    return done
