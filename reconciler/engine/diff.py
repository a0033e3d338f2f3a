"""Compare the desired state with the observed state: `diff(loaded, observed) -> list[Change]`.

Pure: values in, values out, no I/O besides reading the spec's own templates.
Every Change says what differs and why, so the plan can show a reason for each line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from reconciler.engine.changes import Action, Change, ChangeKind, Phase
from reconciler.engine.diff_backups import BackupInputs, diff_backup, one_init_per_repository
from reconciler.engine.diff_models import diff_models
from reconciler.engine.diff_removals import diff_removals
from reconciler.engine.textdiff import changed_keys, hidden_diff, unified_diff
from reconciler.hosts.observation import FleetState, HostState
from state.layout import unit_path
from state.load import LoadedFleet
from state.placement import is_guarded
from state.render import render_config, render_unit
from state.spec.services import AptInstall, ConfigFile, FileInstall, Service

WITHHELD = "not shown in a review: the commit in force does not manage it"


def diff(
    loaded: LoadedFleet,
    observed: FleetState,
    backup_inputs: Mapping[str, BackupInputs] | None = None,
) -> list[Change]:
    """Every change needed to converge `observed` to `loaded.fleet` (unordered).

    `backup_inputs` holds, per backup policy, what the controller knows that the spec
    does not (the env file's digest, the repository host's key); the caller computes
    it so that this function stays pure.
    """
    fleet = loaded.fleet
    changes: list[Change] = []
    for host_name in fleet.hosts:
        host = observed.hosts.get(host_name)
        if host is not None and not host.contacted:
            changes.append(
                Change(
                    host_name,
                    None,
                    Phase.HOST,
                    "not_contacted",
                    "create",
                    f"host {host_name}",
                    host.error or "not contacted in a review",
                )
            )
        elif host is None or not host.reachable:
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
    for host_name in fleet.hosts:
        host = observed.hosts.get(host_name)
        if host is not None and _observed_ok(host):
            changes.extend(diff_removals(loaded, host_name, host))
    for model_set in fleet.models:
        host = observed.hosts.get(fleet.services[model_set.service].host)
        if _observed_ok(host):
            pending = any(c.service == model_set.service for c in changes)
            changes.extend(diff_models(loaded, model_set.service, observed, pending))
    for name, policy in fleet.backups.items():
        host = observed.hosts.get(policy.host)
        if host is not None and _observed_ok(host):
            changes.extend(
                diff_backup(
                    loaded,
                    name,
                    host,
                    observed.backups.get(name),
                    observed.observed_at,
                    (backup_inputs or {}).get(name, BackupInputs()),
                )
            )
    return one_init_per_repository(loaded, changes)


def _observed_ok(host: HostState | None) -> bool:
    return host is not None and host.reachable and host.error is None


def diff_service(
    loaded: LoadedFleet, name: str, service: Service, host: HostState, observed: FleetState
) -> list[Change]:
    """Changes for one service on a reachable host."""
    found = [*_diff_install(name, service, host), *_diff_configs(loaded, name, service, host)]
    restart_for = [c for c in found if c.kind != "packages"]
    found += _diff_unit(name, service, host, restart_for, is_guarded(loaded.fleet, name))
    if not found:
        unhealthy = [r for r in observed.health.get(name, ()) if not r.healthy]
        if unhealthy:
            reason = "; ".join(f"{r.check}: {r.detail}" for r in unhealthy)
            kind: ChangeKind = "restart" if service.unit is not None else "unhealthy"
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
        if current.withheld:
            reasons.append(f"a file of {current.size} bytes is there ({WITHHELD})")
        elif current.sha256 != install.sha256:
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
            _shown(config, "", want),
        )
    reasons, text = [], None
    if current.withheld:
        reasons.append(f"a file of {current.size} bytes is there ({WITHHELD})")
        text = "(the host's copy is not shown)\n" + _shown(config, "", want)
    elif current.sha256 != hashlib.sha256(want.encode()).hexdigest():
        reasons.append("content differs")
        text = _shown(config, current.content or "", want)
    if current.mode != config.mode.zfill(4):
        reasons.append(f"mode {current.mode} → {config.mode.zfill(4)}")
    if (current.owner, current.group) != (config.owner, config.group):
        reasons.append(f"owner {current.owner}:{current.group} → {config.owner}:{config.group}")
    if not reasons:
        return None
    return Change(
        host_name, service, Phase.FILES, "config", "update", subject, ", ".join(reasons), text
    )


def _shown(config: ConfigFile, old: str, new: str) -> str:
    """A config file's diff as plans show it: masked, or hidden when it is sensitive."""
    return hidden_diff(old, new) if config.sensitive else unified_diff(old, new, config.path)


def _diff_unit(
    name: str, service: Service, host: HostState, restart_for: list[Change], guarded: bool
) -> list[Change]:
    unit = service.unit
    if unit is None:
        return []
    want = render_unit(unit, guarded)
    state = host.units.get(name)
    subject = f"unit {name}.service"
    changes = []
    current_file = state.file if state else None
    exists = current_file is not None or (state is not None and state.file_cut is not None)
    if state is not None and state.withheld_size is not None:
        exists = True
        reason = f"a unit file of {state.withheld_size} bytes is there ({WITHHELD})"
        shown = "(the host's copy is not shown)\n" + unified_diff("", want, unit_path(name))
    elif state is not None and state.file_cut is not None:  # too large to read: never shown
        size, _, digest = state.file_cut.partition(" ")
        reason = f"unit file differs: {size} bytes on the host, larger than a unit file is read"
        shown = f"(unit file of {size} bytes, sha256 {digest[:16]}…: not read, not shown)\n"
    elif current_file != want:
        reason = (
            "unit file missing"
            if current_file is None
            else f"unit file differs: {changed_keys(current_file, want)}"
        )
        shown = unified_diff(current_file or "", want, unit_path(name))
    else:
        reason = shown = ""
    if reason:
        action: Action = "update" if exists else "create"
        changes.append(
            Change(service.host, name, Phase.UNIT, "unit_file", action, subject, reason, shown)
        )
    if state is not None and state.dropins:
        folder = unit_path(name) + ".d"
        changes.append(
            Change(
                service.host,
                name,
                Phase.UNIT,
                "dropins",
                "delete",
                f"drop-ins {folder}",
                f"not in the spec: {', '.join(state.dropins)} (each overrides the unit)",
                "".join(f"-{folder}/{dropin}\n" for dropin in state.dropins),
            )
        )
    enabled = state.enabled if state else "not-found"
    # Enabling and starting a unit that does not exist yet is part of creating it.
    runtime_action: Action = "update" if exists else "create"
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
    active = state.active if state and exists else "inactive"
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
