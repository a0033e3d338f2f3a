"""The vocabulary of a plan: a `Change` (what differs, why) and the `Phase` it belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

Action = Literal["create", "update", "delete", "alert"]


class Phase(IntEnum):
    """Apply order within a host: install, files and unit, run, health, models, backups now."""

    HOST = 0
    INSTALL = 1
    FILES = 2
    UNIT = 3
    RUNTIME = 4
    HEALTH = 5
    MODELS = 6
    BACKUP = 7


@dataclass(frozen=True)
class Change:
    """One difference between desired and observed, with the reason it exists."""

    host: str
    service: str | None
    phase: Phase
    kind: str
    action: Action
    subject: str
    reason: str
    diff: str | None = None
