"""The vocabulary of a plan: a `Change` (what differs, why) and the `Phase` it belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

Action = Literal["create", "update", "delete", "alert"]

ChangeKind = Literal[
    # hosts
    "unreachable",
    "observe_failed",
    "not_contacted",
    # services
    "packages",
    "binary",
    "config",
    "unit_file",
    "dropins",
    "enable",
    "disable",
    "start",
    "restart",
    "unhealthy",
    # Ollama models
    "model_pull",
    "model_delete",
    "models_unavailable",
    # backup policies
    "backup_env",
    "backup_script",
    "backup_unit",
    "backup_timer",
    "backup_known_hosts",
    "repo_host_key_unknown",
    "repo_init",
    "repo_missing",
    "backup_now",
    "data_restore",
    "data_missing",
    "copy_now",
    # removals: what the host's record lists and the spec no longer names
    "service_remove",
    "backup_remove",
]
"""What a Change is about: a closed set, so a misspelled kind is a type error."""


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
    kind: ChangeKind
    action: Action
    subject: str
    reason: str
    diff: str | None = None
