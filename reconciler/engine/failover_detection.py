"""Failover detection: from what the controller and the backup saw, decide. Pure.

The primary counts as down only when the controller cannot reach it (over SSH and by
the failover services' health checks) *and* the backup cannot reach it either (the
second opinion), continuously for `grace`. Anything else resets the clock: a success
from either side (flap damping), and a backup the controller cannot ask (then the
controller is probably the one cut off, and nothing moves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reconciler.store.failover_state import FailoverState
from state.spec.failover import Failover

Action = Literal[
    "steady", "countdown", "blocked", "held", "retrying", "promote", "failed_over", "failback"
]

RETRY_FIRST_S = 5.0
RETRY_MAX_S = 300.0


def retry_delay(attempts: int) -> float:
    """Seconds before the next promotion after `attempts` rolled-back ones: 5s, doubling,
    at most 5 minutes. A cause that clears (a lock, a repository back) is retried soon;
    one that does not is not retried, journaled and reported on every probe pass."""
    return min(RETRY_MAX_S, RETRY_FIRST_S * float(2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Sighting:
    """One pass's view of the pair."""

    primary_reached: bool
    backup_reached: bool
    backup_sees_primary: bool | None = None  # None: not asked
    detail: str = ""
    last_renewal: float | None = None  # the primary's newest lease, from any thread


@dataclass(frozen=True)
class Verdict:
    action: Action
    line: str
    state: FailoverState


def duration(seconds: float) -> str:
    """`2m10s`, `45s`, `1h02m`: how the plan states times."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def assess(failover: Failover, state: FailoverState, seen: Sighting, now: float) -> Verdict:
    """The next failover state and what to do, from `seen` at `now`."""
    active = state.placement.active or failover.primary
    if active != failover.primary:
        return _failed_over(failover, state, seen, now)
    moving = ", ".join(failover.services)
    if seen.primary_reached:
        fresh = state.model_copy(
            update={
                "down_since": None,
                "last_contact": now,
                "held": None,
                "attempts": 0,
                "retry_at": None,
                "failure": "",
            }
        )
        return Verdict("steady", "", fresh)
    if not seen.backup_reached:
        return _blocked(
            state,
            f"{failover.primary} unreachable, and so is the backup {failover.backup}: the "
            f"controller may be the one cut off; nothing moves ({seen.detail})",
        )
    if seen.backup_sees_primary:
        return _blocked(
            state,
            f"the controller cannot reach {failover.primary}, but {failover.backup} can: no "
            f"failover (a partition between the controller and {failover.primary}; it stops "
            "its own copies after fence_after)",
        )
    down_since = _outage_start(failover, state, seen, now)
    fresh = state.model_copy(update={"down_since": down_since})
    down = now - down_since
    if state.held:
        return Verdict("held", f"! failover held: {state.held}", fresh)
    if state.retry_at is not None and now < state.retry_at:
        return Verdict(
            "retrying",
            f"! failover {failover.primary} unreachable for {duration(down)}; promotion "
            f"{state.attempts} rolled back ({state.failure}); next try in "
            f"{duration(state.retry_at - now)}",
            fresh,
        )
    left = failover.grace.total_seconds() - down
    if left > 0:
        return Verdict(
            "countdown",
            f"! failover {failover.primary} unreachable for {duration(down)} (backup agrees); "
            f"{moving} move to {failover.backup} in {duration(left)}",
            fresh,
        )
    return Verdict(
        "promote",
        f"! failover {failover.primary} unreachable for {duration(down)} (backup agrees); "
        f"{moving} move to {failover.backup} now",
        fresh,
    )


def _blocked(state: FailoverState, why: str) -> Verdict:
    """Nothing moves, and the clock starts over: the outage is not confirmed."""
    return Verdict("blocked", f"! failover {why}", state.model_copy(update={"down_since": None}))


def _outage_start(failover: Failover, state: FailoverState, seen: Sighting, now: float) -> float:
    """When the primary was last known up: the last contact, if it is recent (a failed
    sighting takes a connect timeout to notice), else now (this controller did not
    watch the outage, after a restart, so it watches a whole grace itself)."""
    start = state.down_since
    if start is None:
        recent = state.last_contact is not None and (
            now - state.last_contact <= failover.grace.total_seconds()
        )
        start = state.last_contact if recent and state.last_contact is not None else now
    # A lease renewed meanwhile (the lease thread, during a long pass) runs from then on:
    # the primary has not fenced itself before that lease lapses.
    return max(start, seen.last_renewal) if seen.last_renewal is not None else start


def _failed_over(failover: Failover, state: FailoverState, seen: Sighting, now: float) -> Verdict:
    since = f" for {duration(now - state.since)}" if state.since else ""
    head = (
        f"failed over: {', '.join(failover.services)} run on {state.placement.active}{since}, "
        f"epoch {state.placement.epoch}"
    )
    if not seen.primary_reached:
        fresh = state.model_copy(update={"healthy_since": None})
        return Verdict("failed_over", f"{head}; {failover.primary} unreachable", fresh)
    healthy_since = state.healthy_since if state.healthy_since is not None else now
    fresh = state.model_copy(update={"healthy_since": healthy_since, "last_contact": now})
    if failover.failback == "manual":
        return Verdict(
            "failed_over",
            f"{head}; {failover.primary} is back and stays fenced: `reconcile failback` "
            "moves them home (failback: manual)",
            fresh,
        )
    left = failover.failback_after.total_seconds() - (now - healthy_since)
    if left > 0:
        return Verdict(
            "failed_over",
            f"{head}; {failover.primary} back for {duration(now - healthy_since)}: "
            f"automatic failback in {duration(left)}",
            fresh,
        )
    return Verdict("failback", f"{head}; {failover.primary} back: failing back now", fresh)


SIGHTING_MARGIN_S = 0.5
"""The timed sighting is planned to end this long after the grace: one that ends even
slightly before it cannot promote, and the next one would end a whole sighting (a
connect timeout, 3 s and more) after the grace."""


def next_sighting(failover: Failover, verdict: Verdict, sighting_s: float, now: float) -> float:
    """Seconds from `now` until the next sighting should start, so that it ends just
    after the grace (or a rolled-back promotion's backoff) does: a sighting of a lost
    primary takes `sighting_s` (a connect timeout) to fail. Infinite when no clock counts."""
    state = verdict.state
    if verdict.action == "countdown" and state.down_since is not None:
        ends = state.down_since + failover.grace.total_seconds()
    elif verdict.action == "retrying" and state.retry_at is not None:
        ends = state.retry_at
    else:
        return float("inf")
    return max(0.0, ends + SIGHTING_MARGIN_S - now - sighting_s)


Alarm = Literal["raise", "clear"]


def alarm(before: FailoverState, verdict: Verdict, seen: Sighting) -> Alarm | None:
    """Page at once when both sides confirm the primary is down (the runbook's P0: "primary
    VPS down", immediate), not only when the grace ends and it moves; clear the page
    when the primary is reached again, before or after a move."""
    if not before.alarmed and verdict.action in ("countdown", "promote", "held", "retrying"):
        return "raise"
    if before.alarmed and seen.primary_reached:
        return "clear"
    return None
