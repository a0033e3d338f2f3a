"""When the watch loop sights the failover pair next, from what the last failover pass
decided: while the clock counts a lost primary down, the next sighting is timed to end
as the grace does, not whenever the next probe round starts, so detection lands within
a second of the grace's end (not a probe round plus a connect timeout after it)."""

from __future__ import annotations

import time
from collections.abc import Callable

from reconciler.engine.failover_detection import Verdict, next_sighting
from state.spec.failover import Failover

COUNTING_SIGHTING_S = 3.5
"""A sighting of a lost primary, until one is measured: the lease's connect timeout."""


class FailoverClock:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.due = float("inf")  # a pass timed to the failover clock's deadline (loop clock)
        self.sighting_s = COUNTING_SIGHTING_S  # how long a counting sighting takes
        self.counting = False  # the last failover pass counted down the grace

    def decided(self, failover: Failover, verdict: Verdict, took: float) -> str | None:
        """Time the next sighting after a pass that took `took` seconds; the primary when
        the pass found it out of reach (its probes and heals wait for the failover)."""
        counted, self.counting = self.counting, verdict.action == "countdown"
        if counted and self.counting:  # a counting sighting (failover_pass.sight): its length
            self.sighting_s = took
        self.due = self.clock() + next_sighting(failover, verdict, self.sighting_s, time.time())
        lost = verdict.action in ("countdown", "blocked", "held", "retrying") or (
            verdict.action == "failed_over" and verdict.state.healthy_since is None
        )
        return failover.primary if lost else None

    def sighting_would_overrun(self) -> bool:
        """A pass timed to the deadline is due before a sighting started now would end."""
        return self.clock() > self.due - self.sighting_s
