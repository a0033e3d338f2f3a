"""Scheduled backup verification for `reconcile watch`: checks and restore drills when due.

Due-ness comes from the journal's own record of the last check and drill of each
policy, so a restarted daemon does not repeat them. Outcomes are events: P3 when
they pass, a P1 escalation when they fail.
"""

from __future__ import annotations

from datetime import timedelta

from reconciler.drill import DrillResult, check_repository, rotating_subset, run_drill
from reconciler.events import Event, EventBus
from reconciler.journal import Journal
from state.load import LoadedFleet


def is_due(last_at: float | None, every: timedelta, now: float) -> bool:
    return last_at is None or now - last_at >= every.total_seconds()


def last_event_at(journal: Journal, kinds: tuple[str, ...], policy: str, word: str) -> float | None:
    times = [
        e["at"]
        for kind in kinds
        for e in journal.events(500, kind)
        if e["service"] == f"backup:{policy}" and word in e["message"]
    ]
    return max(times, default=None)


def checked(loaded: LoadedFleet, name: str, bus: EventBus, subset: str) -> str | None:
    """Run `restic check` on `subset`; emit the verdict; return the error or None."""
    policy = loaded.fleet.backups[name]
    error = check_repository(loaded, name, subset)
    if error is None:
        bus.emit(
            Event(
                "P3",
                "backup_check",
                f"backup {name}: check {subset} ok",
                policy.host,
                f"backup:{name}",
                {"subset": subset},
            )
        )
    else:
        bus.emit(
            Event(
                "P1",
                "escalation",
                f"backup {name}: repository check failed: {error}",
                policy.host,
                f"backup:{name}",
                {"subset": subset},
            )
        )
    return error


def drilled(loaded: LoadedFleet, name: str, bus: EventBus) -> tuple[DrillResult, str]:
    """Run a restore drill; emit the verdict; return the result and its one-line summary."""
    policy = loaded.fleet.backups[name]
    result = run_drill(loaded, name)
    verdict = "passed" if result.ok else "FAILED"
    rto = f", RTO {result.rto_seconds:g}s" if result.rto_seconds is not None else ""
    message = (
        f"backup {name}: drill {verdict}: restored snapshot {result.snapshot} "
        f"({result.files} files) in {result.seconds:.1f}s{rto}"
    )
    bus.emit(
        Event(
            "P3" if result.ok else "P1",
            "drill" if result.ok else "escalation",
            message,
            policy.host,
            f"backup:{name}",
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
        last_check = last_event_at(journal, ("backup_check", "escalation"), name, "check")
        if is_due(last_check, policy.check_every, now):
            subset = rotating_subset()
            error = checked(loaded, name, bus, subset)
            done.append(f"backup {name}: check {subset} {'ok' if error is None else 'FAILED'}")
        last_drill = last_event_at(journal, ("drill", "escalation"), name, "drill")
        if is_due(last_drill, policy.drill_every, now):
            done.append(drilled(loaded, name, bus)[1])
    return done
