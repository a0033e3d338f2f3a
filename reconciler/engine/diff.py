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
from reconciler.hosts.observation import FleetState, HostState, UnitState
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
    changes = [c for h in fleet.hosts if (c := _host_change(h, observed.hosts.get(h)))]
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


def _host_change(name: str, host: HostState | None) -> Change | None:
    """A host that could not be looked at: not contacted (a review), unreachable, or
    reached but not observed."""
    subject = f"host {name}"
    if host is not None and not host.contacted:
        reason = host.error or "not contacted in a review"
        return Change(name, None, Phase.HOST, "not_contacted", "create", subject, reason)
    if host is None or not host.reachable:
        reason = f"unreachable: {host.error if host else 'not observed'}"
        return Change(name, None, Phase.HOST, "unreachable", "alert", subject, reason)
    if host.error is not None:
        reason = f"could not be observed: {host.error}"
        return Change(name, None, Phase.HOST, "observe_failed", "alert", subject, reason)
    return None


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
            _config_diff(config, "", want),
        )
    reasons, text = [], None
    if current.withheld:
        reasons.append(f"a file of {current.size} bytes is there ({WITHHELD})")
        text = "(the host's copy is not shown)\n" + _config_diff(config, "", want)
    elif current.sha256 != hashlib.sha256(want.encode()).hexdigest():
        reasons.append("content differs")
        text = _config_diff(config, current.content or "", want)
    if current.mode != config.mode.zfill(4):
        reasons.append(f"mode {current.mode} → {config.mode.zfill(4)}")
    if (current.owner, current.group) != (config.owner, config.group):
        reasons.append(f"owner {current.owner}:{current.group} → {config.owner}:{config.group}")
    if not reasons:
        return None
    return Change(
        host_name, service, Phase.FILES, "config", "update", subject, ", ".join(reasons), text
    )


def _config_diff(config: ConfigFile, old: str, new: str) -> str:
    """A config file's diff as plans show it: masked, or hidden when it is sensitive."""
    return hidden_diff(old, new) if config.sensitive else unified_diff(old, new, config.path)


def _diff_unit(
    name: str, service: Service, host: HostState, restart_for: list[Change], guarded: bool
) -> list[Change]:
    unit = service.unit
    if unit is None:
        return []
    state = host.units.get(name)
    exists = state is not None and (
        state.file is not None or state.file_cut is not None or state.withheld_size is not None
    )
    changes = [
        c
        for c in (
            _unit_file_change(name, service.host, render_unit(unit, guarded), state, exists),
            _dropins_change(name, service.host, state),
        )
        if c is not None
    ]
    changes += _enablement_changes(name, service.host, unit.enabled, state, exists)
    active = state.active if state and exists else "inactive"
    # Enabling and starting a unit that does not exist yet is part of creating it.
    if active != "active":
        start: Action = "update" if exists else "create"
        changes.append(_runtime(service.host, name, "start", start, f"ActiveState={active}"))
    elif restart_for or changes:
        why = ", ".join(sorted({c.subject for c in [*restart_for, *changes]}))
        changes.append(_runtime(service.host, name, "restart", "update", f"changed: {why}"))
    return changes


def _unit_file_change(
    name: str, host: str, want: str, state: UnitState | None, exists: bool
) -> Change | None:
    current_file = state.file if state else None
    if state is not None and state.withheld_size is not None:
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
        return None
    action: Action = "update" if exists else "create"
    subject = f"unit {name}.service"
    return Change(host, name, Phase.UNIT, "unit_file", action, subject, reason, shown)


def _dropins_change(name: str, host: str, state: UnitState | None) -> Change | None:
    if state is None or not state.dropins:
        return None
    folder = unit_path(name) + ".d"
    return Change(
        host,
        name,
        Phase.UNIT,
        "dropins",
        "delete",
        f"drop-ins {folder}",
        f"not in the spec: {', '.join(state.dropins)} (each overrides the unit)",
        "".join(f"-{folder}/{dropin}\n" for dropin in state.dropins),
    )


def _enablement_changes(
    name: str, host: str, enable: bool, state: UnitState | None, exists: bool
) -> list[Change]:
    enabled = state.enabled if state else "not-found"
    if enable and enabled != "enabled":
        action: Action = "update" if exists else "create"
        return [_runtime(host, name, "enable", action, f"UnitFileState={enabled}")]
    if not enable and enabled == "enabled":
        return [_runtime(host, name, "disable", "update", "enabled, spec says enabled: false")]
    return []


def _runtime(host: str, name: str, kind: ChangeKind, action: Action, reason: str) -> Change:
    return Change(host, name, Phase.RUNTIME, kind, action, f"{kind} {name}.service", reason)
