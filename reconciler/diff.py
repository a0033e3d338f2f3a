"""Compare the desired state with the observed state: `diff(loaded, observed) -> list[Change]`.

Pure: values in, values out, no I/O besides reading the spec's own templates.
Every Change says what differs and why, so the plan can show a reason for each line.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from reconciler.observed import FleetState, HostState
from state.layout import unit_path
from state.load import LoadedFleet
from state.models import AptInstall, ConfigFile, FileInstall, Service
from state.render import render_config, render_unit

Action = Literal["create", "update", "delete", "alert"]


class Phase(IntEnum):
    """Apply order within a host: install, then files and unit, then run, health, models."""

    HOST = 0
    INSTALL = 1
    FILES = 2
    UNIT = 3
    RUNTIME = 4
    HEALTH = 5
    MODELS = 6


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


def diff(loaded: LoadedFleet, observed: FleetState) -> list[Change]:
    """Every change needed to converge `observed` to `loaded.fleet` (unordered)."""
    fleet = loaded.fleet
    changes: list[Change] = []
    for host_name in fleet.hosts:
        host = observed.hosts.get(host_name)
        if host is None or not host.reachable:
            error = host.error if host else "not observed"
            changes.append(
                Change(
                    host_name,
                    None,
                    Phase.HOST,
                    "unreachable",
                    "alert",
                    f"host {host_name}",
                    f"unreachable: {error}",
                )
            )
        elif host.error is not None:
            changes.append(
                Change(
                    host_name,
                    None,
                    Phase.HOST,
                    "observe_failed",
                    "alert",
                    f"host {host_name}",
                    f"could not be observed: {host.error}",
                )
            )
    for name, service in fleet.services.items():
        host = observed.hosts.get(service.host)
        if host is not None and _observed_ok(host):
            changes.extend(diff_service(loaded, name, service, host, observed))
    for model_set in fleet.models:
        host = observed.hosts.get(fleet.services[model_set.service].host)
        if _observed_ok(host):
            pending = any(c.service == model_set.service for c in changes)
            changes.extend(_diff_models(loaded, model_set.service, observed, pending))
    return changes


def _observed_ok(host: HostState | None) -> bool:
    return host is not None and host.reachable and host.error is None


def diff_service(
    loaded: LoadedFleet, name: str, service: Service, host: HostState, observed: FleetState
) -> list[Change]:
    """Changes for one service on a reachable host."""
    found = [*_diff_install(name, service, host), *_diff_configs(loaded, name, service, host)]
    found += _diff_unit(name, service, host, restart_for=[c for c in found if c.kind != "packages"])
    if not found:
        unhealthy = [r for r in observed.health.get(name, ()) if not r.healthy]
        if unhealthy:
            reason = "; ".join(f"{r.check}: {r.detail}" for r in unhealthy)
            kind = "restart" if service.unit is not None else "unhealthy"
            found.append(
                Change(
                    service.host,
                    name,
                    Phase.HEALTH,
                    kind,
                    "alert",
                    f"service {name}",
                    f"unhealthy: {reason}",
                )
            )
    return found


def _diff_install(name: str, service: Service, host: HostState) -> list[Change]:
    install = service.install
    if isinstance(install, AptInstall):
        missing = [p for p in install.packages if host.packages.get(p) != "installed"]
        if missing:
            return [
                Change(
                    service.host,
                    name,
                    Phase.INSTALL,
                    "packages",
                    "create",
                    f"apt {' '.join(missing)}",
                    "not installed",
                )
            ]
    elif isinstance(install, FileInstall):
        current = host.files.get(install.dest)
        subject = f"binary {install.dest}"
        if current is None:
            return [
                Change(service.host, name, Phase.INSTALL, "binary", "create", subject, "missing")
            ]
        reasons = []
        if current.sha256 != install.sha256:
            reasons.append(f"sha256 {current.sha256[:12]} → {install.sha256[:12]}")
        if current.mode != install.mode.zfill(4):
            reasons.append(f"mode {current.mode} → {install.mode.zfill(4)}")
        if reasons:
            return [
                Change(
                    service.host,
                    name,
                    Phase.INSTALL,
                    "binary",
                    "update",
                    subject,
                    ", ".join(reasons),
                )
            ]
    return []


def _diff_configs(
    loaded: LoadedFleet, name: str, service: Service, host: HostState
) -> list[Change]:
    changes = []
    for config in service.config_files:
        want = render_config(loaded, name, config)
        change = _diff_file(service.host, name, config, want, host)
        if change is not None:
            changes.append(change)
    return changes


def _diff_file(
    host_name: str, service: str, config: ConfigFile, want: str, host: HostState
) -> Change | None:
    current = host.files.get(config.path)
    subject = f"file {config.path}"
    if current is None:
        return Change(
            host_name,
            service,
            Phase.FILES,
            "config",
            "create",
            subject,
            "missing",
            unified_diff("", want, config.path),
        )
    reasons, text = [], None
    if current.sha256 != hashlib.sha256(want.encode()).hexdigest():
        reasons.append("content differs")
        text = unified_diff(current.content or "", want, config.path)
    if current.mode != config.mode.zfill(4):
        reasons.append(f"mode {current.mode} → {config.mode.zfill(4)}")
    if (current.owner, current.group) != (config.owner, config.group):
        reasons.append(f"owner {current.owner}:{current.group} → {config.owner}:{config.group}")
    if not reasons:
        return None
    return Change(
        host_name, service, Phase.FILES, "config", "update", subject, ", ".join(reasons), text
    )


def _diff_unit(
    name: str, service: Service, host: HostState, restart_for: list[Change]
) -> list[Change]:
    unit = service.unit
    if unit is None:
        return []
    want = render_unit(unit)
    state = host.units.get(name)
    subject = f"unit {name}.service"
    changes = []
    current_file = state.file if state else None
    if current_file is None:
        changes.append(
            Change(
                service.host,
                name,
                Phase.UNIT,
                "unit_file",
                "create",
                subject,
                "unit file missing",
                unified_diff("", want, unit_path(name)),
            )
        )
    elif current_file != want:
        changes.append(
            Change(
                service.host,
                name,
                Phase.UNIT,
                "unit_file",
                "update",
                subject,
                f"unit file differs: {changed_keys(current_file, want)}",
                unified_diff(current_file, want, unit_path(name)),
            )
        )
    enabled = state.enabled if state else "not-found"
    # Enabling and starting a unit that does not exist yet is part of creating it.
    runtime_action: Action = "create" if current_file is None else "update"
    if unit.enabled and enabled != "enabled":
        changes.append(
            Change(
                service.host,
                name,
                Phase.RUNTIME,
                "enable",
                runtime_action,
                f"enable {name}.service",
                f"UnitFileState={enabled}",
            )
        )
    if not unit.enabled and enabled == "enabled":
        changes.append(
            Change(
                service.host,
                name,
                Phase.RUNTIME,
                "disable",
                "update",
                f"disable {name}.service",
                "enabled, spec says enabled: false",
            )
        )
    active = state.active if state and current_file is not None else "inactive"
    if active != "active":
        changes.append(
            Change(
                service.host,
                name,
                Phase.RUNTIME,
                "start",
                runtime_action,
                f"start {name}.service",
                f"ActiveState={active}",
            )
        )
    elif restart_for or changes:
        why = ", ".join(sorted({c.subject for c in [*restart_for, *changes]}))
        changes.append(
            Change(
                service.host,
                name,
                Phase.RUNTIME,
                "restart",
                "update",
                f"restart {name}.service",
                f"changed: {why}",
            )
        )
    return changes


def _diff_models(
    loaded: LoadedFleet, service: str, observed: FleetState, service_pending: bool
) -> list[Change]:
    model_set = next(m for m in loaded.fleet.models if m.service == service)
    host = loaded.fleet.services[service].host
    state = observed.models.get(service)
    if state is None or state.error is not None:
        if service_pending:  # the service is being (re)created; models follow it
            return [
                Change(
                    host,
                    service,
                    Phase.MODELS,
                    "model_pull",
                    "create",
                    f"model {m}",
                    "service not ready yet",
                )
                for m in model_set.present
            ]
        error = state.error if state else "not observed"
        return [
            Change(
                host,
                service,
                Phase.MODELS,
                "models_unavailable",
                "alert",
                f"models on {service}",
                f"cannot list models: {error}",
            )
        ]
    changes = [
        Change(host, service, Phase.MODELS, "model_pull", "create", f"model {m}", "not present")
        for m in model_set.present
        if m not in state.present
    ]
    if model_set.prune:
        changes += [
            Change(
                host,
                service,
                Phase.MODELS,
                "model_delete",
                "delete",
                f"model {m}",
                "not in spec (prune: true)",
            )
            for m in state.present
            if m not in model_set.present
        ]
    return changes


def unified_diff(old: str, new: str, path: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        f"a{path}" if old else "/dev/null",
        f"b{path}",
        n=1,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def changed_keys(old: str, new: str) -> str:
    """Which `Key=` settings differ between two unit files, e.g. 'ExecStart changed'."""

    def settings(text: str) -> set[str]:
        return {line for line in text.splitlines() if "=" in line and not line.startswith("#")}

    before, after = settings(old), settings(new)
    keys = sorted({line.split("=", 1)[0] for line in before ^ after})
    return ", ".join(keys) + " changed" if keys else "formatting changed"
