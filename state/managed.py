"""The record of what the reconciler manages on a host, as written there and read back.

A JSON document listing service and backup-policy names. It is written on the host by
every deploy cycle, so removal works from what was actually created there and never
guesses: a host without a record (converged by hand, or by an older version) gets no
removals at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from state.placement import data_policies
from state.spec.fleet import Fleet
from state.types import NAME_PATTERN

RECORD_FORMAT = 1


@dataclass(frozen=True)
class Managed:
    """Names the reconciler manages on one host."""

    services: frozenset[str] = field(default_factory=frozenset)
    backups: frozenset[str] = field(default_factory=frozenset)

    def __or__(self, other: Managed) -> Managed:
        return Managed(self.services | other.services, self.backups | other.backups)


def managed_by_spec(fleet: Fleet, host: str) -> Managed:
    """What the spec says the reconciler manages on `host`. While failed over, the
    primary keeps its failover services and their backup policies: installed, fenced by
    the guard, never removed (failback deploys them again)."""
    held: tuple[list[str], list[str]] = ([], [])
    if fleet.failover is not None and fleet.failover.primary == host:
        held = (fleet.failover.services, data_policies(fleet))
    return Managed(
        frozenset(n for n, s in fleet.services.items() if s.host == host) | set(held[0]),
        frozenset(n for n, p in fleet.backups.items() if p.host == host) | set(held[1]),
    )


def render_record(managed: Managed) -> str:
    document = {
        "format": RECORD_FORMAT,
        "services": sorted(managed.services),
        "backups": sorted(managed.backups),
    }
    return json.dumps(document, indent=2) + "\n"


def parse_record(text: str | None) -> Managed | None:
    """The record's names, or None when there is no record we can trust (then nothing
    is removed)."""
    if not text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("format") != RECORD_FORMAT:
        return None
    services, backups = document.get("services"), document.get("backups")
    if not isinstance(services, list) or not isinstance(backups, list):
        return None
    if not all(isinstance(n, str) and re.fullmatch(NAME_PATTERN, n) for n in [*services, *backups]):
        return None  # not a record we wrote: trust none of it
    return Managed(frozenset(services), frozenset(backups))
