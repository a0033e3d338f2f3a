"""Observe backup policies from the controller: the newest snapshot of each, through restic.

Read-only (`restic snapshots`). A missing secret, an unreachable or uninitialised
repository becomes a `BackupState.error`, which the plan shows as RPO drift. The
repository is not asked again when the host reports the very snapshot it confirmed
lately (see `reconciler.store.confirmations`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from backups.repository import open_repository
from backups.restic_repo import RepositoryMissing, ResticError
from reconciler.observe.observation import BackupState, HostState
from reconciler.store.confirmations import Confirmation
from state.layout import backup_path
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
    if not snapshots:
        return BackupState(snapshots=0)
    newest = snapshots[-1]
    return BackupState(last_snapshot=newest.time, snapshots=len(snapshots), newest_id=newest.id)


def reuse_confirmation(
    name: str, rpo_seconds: float, known: Confirmation | None, host: HostState, now: float
) -> BackupState | None:
    """The policy's state from an earlier confirmation, when the host's last backup is
    the snapshot the repository confirmed, and that confirmation is fresher than the RPO;
    else None (ask the repository). Pure."""
    seen = host.files.get(backup_path(name, "last")) if host.reachable else None
    words = (seen.content or "").split() if seen else []
    if known is None or len(words) != 2 or not words[0]:
        return None
    same = known.snapshot_id.startswith(words[0]) or words[0].startswith(known.snapshot_id)
    if not same or now - known.confirmed > rpo_seconds:
        return None
    return BackupState(
        last_snapshot=datetime.fromtimestamp(known.snapshot_time, UTC),
        snapshots=known.snapshots,
        newest_id=known.snapshot_id,
        listed=False,
    )
