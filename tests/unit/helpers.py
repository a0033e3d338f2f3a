"""Shared builders for unit tests: load a spec from text and build its ideal observation."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from reconciler.hosts.observation import (
    CheckResult,
    FileState,
    FleetState,
    HostState,
    ModelsState,
    UnitState,
)
from state.load import LoadedFleet, parse_fleet
from state.render import render_config, render_unit
from state.spec.services import AptInstall, FileInstall

NOW = 1_800_000_000


def load_text(text: str, name: str = "state/test.yaml") -> LoadedFleet:
    return parse_fleet(text, Path(name))


def ideal_observation(loaded: LoadedFleet) -> FleetState:
    """What a fully converged, healthy fleet would look like when observed."""
    fleet = loaded.fleet
    hosts: dict[str, dict[str, dict[str, Any]]] = {
        h: {"units": {}, "files": {}, "packages": {}} for h in fleet.hosts
    }
    for name, service in fleet.services.items():
        host = hosts[service.host]
        if service.unit is not None:
            host["units"][name] = UnitState(
                active="active",
                sub="running",
                enabled="enabled" if service.unit.enabled else "disabled",
                file=render_unit(service.unit),
            )
        for config in service.config_files:
            content = render_config(loaded, name, config)
            host["files"][config.path] = _file(
                content.encode(), config.mode, config.owner, config.group, content
            )
        if isinstance(service.install, FileInstall):
            host["files"][service.install.dest] = FileState(
                mode=service.install.mode.zfill(4),
                owner="root",
                group="root",
                size=1,
                mtime=NOW,
                sha256=service.install.sha256,
            )
        if isinstance(service.install, AptInstall):
            host["packages"].update({p: "installed" for p in service.install.packages})
    states = {
        name: HostState(name=name, reachable=True, now=NOW, **data) for name, data in hosts.items()
    }
    health = {
        name: tuple(CheckResult(check=c.kind, healthy=True, detail="ok") for c in s.health)
        for name, s in fleet.services.items()
    }
    models = {
        m.service: ModelsState(endpoint="http://x", present=tuple(m.present)) for m in fleet.models
    }
    return FleetState(hosts=states, health=health, models=models)


def _file(data: bytes, mode: str, owner: str, group: str, content: str) -> FileState:
    return FileState(
        mode=mode.zfill(4),
        owner=owner,
        group=group,
        size=len(data),
        mtime=NOW,
        sha256=hashlib.sha256(data).hexdigest(),
        content=content,
    )
