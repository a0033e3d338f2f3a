"""Observe backup policies from the controller: the newest snapshot of each, through restic.

Read-only (`restic snapshots`). A missing secret, an unreachable or uninitialised
repository becomes a `BackupState.error`, which the plan shows as RPO drift.
"""

from __future__ import annotations

import hashlib

from backups.restic_repo import RepositoryMissing, ResticError, ResticRepo, sftp_command
from reconciler.observed import BackupState
from state.models import Fleet
from state.render_backup import render_env
from state.repository import controller_url, resolve_repository
from state.secrets import SecretUnavailable, resolve_secret


def open_repository(fleet: Fleet, name: str) -> ResticRepo:
    """The policy's repository as the controller reaches it. Raises SecretUnavailable."""
    policy = fleet.backups[name]
    target = resolve_repository(fleet, policy)
    sftp = sftp_command(fleet.hosts[target.sftp_host]) if target.sftp_host else None
    return ResticRepo(controller_url(fleet, target), resolve_secret(policy.password), sftp)


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


def env_digests(fleet: Fleet) -> dict[str, str | None]:
    """sha256 each policy's env file should have (None when its secret is unavailable)."""
    digests: dict[str, str | None] = {}
    for name, policy in fleet.backups.items():
        try:
            password = resolve_secret(policy.password)
        except SecretUnavailable:
            digests[name] = None
            continue
        content = render_env(resolve_repository(fleet, policy), password)
        digests[name] = hashlib.sha256(content.encode()).hexdigest()
    return digests
