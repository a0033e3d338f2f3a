"""Observe backup policies from the controller: the newest snapshot of each, through restic.

Read-only (`restic snapshots`). A missing secret, an unreachable or uninitialised
repository becomes a `BackupState.error`, which the plan shows as RPO drift.
"""

from __future__ import annotations

from backups.repository import open_repository
from backups.restic_repo import RepositoryMissing, ResticError
from reconciler.observe.observation import BackupState
from state.models import Fleet
from state.secrets import SecretUnavailable


def observe_backup(fleet: Fleet, name: str) -> BackupState:
    policy = fleet.backups[name]
    try:
        snapshots = open_repository(fleet, name).snapshots(tag=name, host=policy.host)
    except SecretUnavailable as exc:
        return BackupState(error=str(exc))
    except RepositoryMissing as exc:
        return BackupState(error=str(exc), missing_repository=True)
    except ResticError as exc:
        return BackupState(error=str(exc))
    last = snapshots[-1].time if snapshots else None
    return BackupState(last_snapshot=last, snapshots=len(snapshots))
