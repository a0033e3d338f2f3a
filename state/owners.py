"""Every path the reconciler writes on each host, and the spec field that owns it. Pure.

A pull request must not be able to place one thing where another is: a config file
written over another service's unit, over a backup policy's password file, or over the
fencing guard's script would make fencing whatever the pull request says. So every
managed path has exactly one owner, and the reconciler's own trees and the unit
directory belong to the reconciler alone (a file there is a unit, or a drop-in that
changes one).
"""

from __future__ import annotations

from collections.abc import Iterator

from state.fence import EPOCH_FILE, GUARD, LEASE_FILE
from state.layout import (
    BACKUP_KEY,
    MANAGED_RECORD,
    UNIT_DIR,
    BackupFile,
    backup_path,
    backup_unit,
    unit_path,
)
from state.placement import guard_service
from state.spec.fleet import Fleet
from state.spec.services import FileInstall

FieldPath = tuple[str | int, ...]
RESERVED_TREES = (
    UNIT_DIR,
    "/etc/fleet-reconciler",
    "/var/lib/fleet-reconciler",
    "/usr/local/lib/fleet-reconciler",
)
UNIT_SUFFIXES = (
    ".service", ".socket", ".timer", ".target", ".path", ".mount", ".automount",
    ".swap", ".slice", ".scope", ".device",
)  # fmt: skip
RESERVED_PREFIXES = ("fleet-backup-", "fleet-guard-")
BACKUP_FILES: tuple[BackupFile, ...] = ("env", "key", "known_hosts", "last", "running", "script")


def own_paths(fleet: Fleet, host: str) -> Iterator[str]:
    """What the reconciler itself keeps on `host`, whatever the spec says."""
    yield from (MANAGED_RECORD, BACKUP_KEY)
    if fleet.failover is not None and host in (fleet.failover.primary, fleet.failover.backup):
        yield from (GUARD, LEASE_FILE, EPOCH_FILE, unit_path(guard_service(host)))


def spec_paths(fleet: Fleet) -> Iterator[tuple[str, str, FieldPath, bool]]:
    """(host, path, owning field, written by the user) for every path the spec makes."""
    for name, service in fleet.services.items():
        if service.unit is not None:
            yield service.host, unit_path(name), ("services", name, "unit"), False
        if isinstance(service.install, FileInstall):
            yield service.host, service.install.dest, ("services", name, "install", "dest"), True
        for i, config in enumerate(service.config_files):
            yield service.host, config.path, ("services", name, "config_files", i, "path"), True
    for name, policy in fleet.backups.items():
        owner: FieldPath = ("backups", name)
        for kind in BACKUP_FILES:
            yield policy.host, backup_path(name, kind), owner, False
        for suffix in (".service", ".timer"):
            yield policy.host, unit_path(backup_unit(name) + suffix), owner, False


def reserved(path: str) -> bool:
    """A path in the reconciler's own trees or the unit directory."""
    return any(path == tree or path.startswith(tree + "/") for tree in RESERVED_TREES)
