"""Where the watch loop's light probes stand in their round over the fleet.

A round reads every host's health once per `probe_interval`, in slices of
SLICE_HOSTS hosts spread evenly over the interval (as Prometheus spreads its scrapes).
Drift on a host is healed right after its slice is read, so a heal never waits for
a read of the whole fleet, and the machine's load stays flat instead of coming in
one burst per interval. A fleet of up to SLICE_HOSTS hosts has one slice: one light
pass per interval, as before. Past MOST_SLICES slices the slices grow instead, so that
each slice keeps a fair share of the interval (a slice's SSH round trip and the loop's
own work per slice do not shrink with it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

SLICE_HOSTS = 8
MOST_SLICES = 8


def probe_slices(
    hosts: Iterable[str], size: int = SLICE_HOSTS, most: int = MOST_SLICES
) -> list[frozenset[str]]:
    """The hosts in ceil(n / size) slices (at most `most`) of nearly equal size, each
    host in one; never an empty list."""
    names = sorted(set(hosts))
    count = min(most, max(1, math.ceil(len(names) / size)))
    return [frozenset(names[i::count]) for i in range(count)]


@dataclass
class ProbeRound:
    """One round of slices: which comes next, and what the round has cost so far."""

    slices: list[frozenset[str]] = field(default_factory=lambda: [frozenset()])
    index: int = 0
    seconds: float = 0.0  # the slices' own time, summed: what a round costs the loop
    failed: bool = False
    lost_primary: str | None = None
    """The primary the failover clock counts for this round: not probed, not healed."""

    @property
    def starting(self) -> bool:
        return self.index == 0

    def begin(self, hosts: Iterable[str], lost_primary: str | None) -> None:
        """Start a round over `hosts` (the fleet may have changed since the last one)."""
        self.slices = probe_slices(hosts)
        self.index, self.seconds, self.failed = 0, 0.0, False
        self.lost_primary = lost_primary

    def step(self, interval: float) -> float:
        """Seconds between two slices: the round takes `interval`."""
        return interval / len(self.slices)

    def current(self) -> frozenset[str]:
        return self.slices[self.index]

    def advance(self, seconds: float, failed: bool) -> bool:
        """Count the slice just read; True when it ended the round."""
        self.seconds += seconds
        self.failed = self.failed or failed
        self.index += 1
        if self.index < len(self.slices):
            return False
        self.index = 0
        return True

    def restart(self) -> None:
        """A full pass read everything: the next slice begins a new round."""
        self.index = 0
