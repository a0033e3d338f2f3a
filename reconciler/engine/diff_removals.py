"""Removals: what the host's record says the reconciler created, and the spec no longer
names, is planned as `-` (Terraform's destroy, Argo CD's prune). Pure.

Generated things go (a service's unit; a backup policy's timer, units, script, env
file and pinned key); data never does (config files, binaries, databases, snapshots).
"""

from __future__ import annotations

from reconciler.engine.changes import Change, Phase
from reconciler.hosts.observation import HostState
from state.layout import MANAGED_RECORD, backup_service_id
from state.load import LoadedFleet
from state.managed import managed_by_spec, parse_record


def diff_removals(loaded: LoadedFleet, host_name: str, host: HostState) -> list[Change]:
    """Removals for one reachable host; none when it has no record to go by."""
    seen = host.files.get(MANAGED_RECORD)
    recorded = parse_record(seen.content if seen else None)
    if recorded is None:
        return []
    wanted = managed_by_spec(loaded.fleet, host_name)
    changes = [
        Change(
            host_name,
            name,
            Phase.RUNTIME,
            "service_remove",
            "delete",
            f"service {name}",
            "no longer in the spec: stop, disable and remove its unit (its files are kept)",
        )
        for name in sorted(recorded.services - wanted.services)
    ]
    changes += [
        Change(
            host_name,
            backup_service_id(name),
            Phase.RUNTIME,
            "backup_remove",
            "delete",
            f"backup {name}",
            "no longer in the spec: remove its timer, units, script and env file "
            "(the snapshots are kept)",
        )
        for name in sorted(recorded.backups - wanted.backups)
    ]
    return changes
