"""Converge one service: install, config files, unit file, then enabled and running.

`daemon-reload` runs only when the unit file changed; the unit restarts only when its
unit, binary or a config file changed (pyinfra `_if=`, evaluated at execute time, never
the deprecated `if op.changed:`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pyinfra import host  # type: ignore[attr-defined]
from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import OperationValueError
from pyinfra.facts.server import Groups, Users
from pyinfra.operations import apt, files, server, systemd

from deploys.exact_file import exact_file
from state.layout import unit_path
from state.load import LoadedFleet
from state.placement import is_guarded
from state.render import render_config, render_unit
from state.spec.services import AptInstall, FileInstall

F = TypeVar("F", bound=Callable[..., Any])


def typed_deploy(name: str) -> Callable[[F], F]:
    """pyinfra's @deploy, keeping the function's own signature for type checkers."""
    return cast(Callable[[F], F], deploy(name))


def any_changed(*ops: Any) -> Callable[[], bool]:
    return lambda: any(op.did_change() for op in ops)


def none_changed(*ops: Any) -> Callable[[], bool]:
    return lambda: not any(op.did_change() for op in ops)


def _mode(mode: str) -> str:
    return mode.lstrip("0") or "0"


def put_file(
    name: str, content: str, dest: str, mode: str, user: str, group: str, stale: bool = False
) -> Any:
    """Write `content` to `dest` with its final mode and owner from the first byte, and
    replace the old file in one rename (see deploys.exact_file): never world-readable,
    never half-written. An owner that does not exist fails the host before anything is
    written (the new file is chowned before the upload). `stale`: the plan found the
    file missing or different, so it is written without being read first."""
    return exact_file(
        name=name,
        content=content,
        dest=dest,
        mode=_mode(mode),
        user=user,
        group=group,
        stale=stale,
    )


@typed_deploy("Install")
def install(loaded: LoadedFleet, service_name: str) -> list[Any]:
    """Packages with apt, or one file/binary checked against its sha256."""
    spec = loaded.fleet.services[service_name].install
    if isinstance(spec, AptInstall):
        return [
            apt.packages(
                name=f"{service_name}: apt packages",
                packages=spec.packages,
                update=True,
                cache_time=3600,
            )
        ]
    if isinstance(spec, FileInstall):
        if "://" in spec.source:
            return [
                files.download(
                    name=f"{service_name}: download {spec.dest}",
                    src=spec.source,
                    dest=spec.dest,
                    sha256sum=spec.sha256,
                    mode=_mode(spec.mode),
                )
            ]
        return [
            files.put(
                name=f"{service_name}: binary {spec.dest}",
                src=str(loaded.resolve(spec.source)),
                dest=spec.dest,
                mode=_mode(spec.mode),
                user="root",
                group="root",
            )
        ]
    return []


def require_accounts(users: set[str], groups: set[str]) -> None:
    """Fail the host, before anything is written, when an owner or group is missing.

    Read from the host's passwd and group (pyinfra facts) only when the spec names an
    account other than root, which every host has."""
    users, groups = users - {"root"}, groups - {"root"}
    missing = []
    if users:
        known_users = host.get_fact(Users)
        missing += [f"user {u!r}" for u in sorted(users) if u not in known_users]
    if groups:
        known_groups = host.get_fact(Groups)
        missing += [f"group {g!r}" for g in sorted(groups) if g not in known_groups]
    if missing:
        raise OperationValueError(
            f"{', '.join(missing)} does not exist on host {host.name}; nothing was written"
        )


@typed_deploy("Config files")
def config_files(
    loaded: LoadedFleet, service_name: str, stale: frozenset[str] = frozenset()
) -> list[Any]:
    """Every config file with explicit content, mode and owner."""
    ops = []
    configs = loaded.fleet.services[service_name].config_files
    require_accounts({c.owner for c in configs}, {c.group for c in configs})
    for config in configs:
        content = render_config(loaded, service_name, config)
        name = f"{service_name}: file {config.path}"
        stale_file = config.path in stale
        ops.append(
            put_file(
                name, content, config.path, config.mode, config.owner, config.group, stale_file
            )
        )
    return ops


@typed_deploy("Systemd unit")
def unit(
    loaded: LoadedFleet,
    service_name: str,
    restart_when: list[Any],
    force_restart: bool = False,
    stale: frozenset[str] = frozenset(),
    start: bool = True,
) -> None:
    """Unit file, daemon-reload if it changed, enabled, running; restart if anything changed.

    `force_restart` restarts even when nothing changed: the reconciler's cure for a
    service that is converged but unhealthy. Without `start` (staged), the unit is
    enabled but neither started nor stopped.
    """
    spec = loaded.fleet.services[service_name].unit
    if spec is None:
        return
    unit_file = put_file(
        f"{service_name}: unit {unit_path(service_name)}",
        render_unit(spec, is_guarded(loaded.fleet, service_name)),
        unit_path(service_name),
        "644",
        "root",
        "root",
        unit_path(service_name) in stale,
    )
    dropins = files.directory(  # the spec names no drop-in: any there is drift
        name=f"{service_name}: no drop-ins in {unit_path(service_name)}.d",
        path=f"{unit_path(service_name)}.d",
        present=False,
    )
    systemd.daemon_reload(
        name=f"{service_name}: daemon-reload", _if=any_changed(unit_file, dropins)
    )
    _run_unit(service_name, spec.enabled, [unit_file, dropins, *restart_when], force_restart, start)


def _run_unit(
    service_name: str, enabled: bool, changed: list[Any], force_restart: bool, start: bool
) -> None:
    """Enabled as the spec says; started, or restarted when anything in `changed` did
    (or always, with `force_restart`); without `start`, neither started nor stopped."""
    if not start:
        systemd.service(
            name=f"{service_name}: enabled (staged: not started)",
            service=f"{service_name}.service",
            running=None,
            enabled=enabled,
        )
        return
    if force_restart:
        systemd.service(
            name=f"{service_name}: restart (unhealthy)",
            service=f"{service_name}.service",
            running=True,
            restarted=True,
            enabled=enabled,
        )
        return
    systemd.service(
        name=f"{service_name}: running (restarted if changed)",
        service=f"{service_name}.service",
        running=True,
        restarted=True,
        enabled=enabled,
        _if=any_changed(*changed),
    )
    systemd.service(
        name=f"{service_name}: running",
        service=f"{service_name}.service",
        running=True,
        enabled=enabled,
        _if=none_changed(*changed),
    )


@typed_deploy("Service")
def service(
    loaded: LoadedFleet,
    service_name: str,
    force_restart: bool = False,
    stale: frozenset[str] = frozenset(),
    start: bool = True,
) -> None:
    """The whole service, in apply order: install, files, unit, enabled and running.
    `stale`: the files the plan found missing or different (written without a read);
    without `start`, everything but the start (see `unit`)."""
    installed = install(loaded, service_name)
    configured = config_files(loaded, service_name, stale)
    unit(loaded, service_name, [*installed, *configured], force_restart, stale, start)


@typed_deploy("Remove service")
def remove_service(service_name: str) -> None:
    """Stop and disable a service the spec no longer names, and remove its unit file.

    Its files (binary, config files, data) are kept: removal never deletes data."""
    q = shlex.quote
    unit = f"{service_name}.service"
    path = unit_path(service_name)
    server.shell(
        name=f"{service_name}: stop and disable",
        commands=[f"if [ -e {q(path)} ]; then systemctl disable --now {q(unit)}; fi"],
    )
    removed = files.file(name=f"{service_name}: remove {path}", path=path, present=False)
    dropins = files.directory(
        name=f"{service_name}: remove {path}.d", path=f"{path}.d", present=False
    )
    systemd.daemon_reload(name=f"{service_name}: daemon-reload", _if=any_changed(removed, dropins))
