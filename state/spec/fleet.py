"""The whole desired state (`Fleet`): one file, in git. Every field is documented on its
model, once; the JSON Schema (`reconcile schema`) and docs/reference.md are generated
from those descriptions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from state.spec.backups import BackupPolicy
from state.spec.base import Spec
from state.spec.controller import ReconcilerSettings
from state.spec.failover import Failover
from state.spec.hosts import Host
from state.spec.notifications import Notifications
from state.spec.services import ModelSet, Service
from state.spec.source import GitSource
from state.types import (
    Name,
)


class Fleet(Spec):
    """The whole desired state: one file, in git."""

    version: Literal[1] = Field(description="Spec format version.", examples=[1])
    hosts: dict[Name, Host] = Field(min_length=1, description="Hosts by name.")
    services: dict[Name, Service] = Field(
        default_factory=dict, description="Services by name (also the systemd unit name)."
    )
    models: list[ModelSet] = Field(default_factory=list, description="Ollama models.")
    backups: dict[Name, BackupPolicy] = Field(
        default_factory=dict, description="Backup policies by name."
    )
    failover: Failover | None = Field(
        None, description="Failover of the primary's services to the backup host."
    )
    notifications: Notifications | None = Field(
        None, description="Incidents and where they are sent: channels, routes, escalation."
    )
    reconciler: ReconcilerSettings = Field(
        default_factory=ReconcilerSettings, description="How `reconcile watch` runs."
    )
    source: GitSource | None = Field(
        None, description="Fetch the desired state from git (unset: this file is the state)."
    )


def spec_models() -> list[type[Spec]]:
    """Every model of the spec (each reachable from `Fleet`, all imported above)."""
    found: list[type[Spec]] = []
    pending: list[type[Spec]] = [Spec]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found
