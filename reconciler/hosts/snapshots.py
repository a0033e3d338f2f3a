"""Observe backup policies from the controller: the newest snapshot of each, through restic.

Read-only (`restic snapshots --no-lock`). A missing secret, an unreachable or
uninitialised repository becomes a `BackupState.error`, which the plan shows as RPO
drift. The repository is not asked again when the host reports the very snapshot it
confirmed lately (see `reconciler.store.confirmations`), and lately is at most
`LISTING_INTERVAL`: every repository is listed on that schedule whatever its host
reports, so a snapshot someone else wrote there (a fenced primary's) is judged within
it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from backups.repository import open_repository
from backups.restic_repo import RepositoryMissing, ResticError, Snapshot
from reconciler.hosts.observation import BackupState, HostState, SnapshotClaim
from reconciler.store.confirmations import Confirmation
from reconciler.untrusted.limits import MAX_CLAIMS
from state.layout import backup_path
from state.secrets import SecretUnavailable
from state.spec.fleet import Fleet

LISTING_INTERVAL = 120.0
"""Seconds a repository's listing is trusted without listing again (or its RPO, when
shorter). Not tied to the host's reports: the host may be the one hiding a write."""


def listing_due(confirmed: float | None, now: float, pass_interval: float) -> bool:
    """Whether a repository last listed at `confirmed` is listed in this pass: when the
    next full pass (`pass_interval` on) would come after LISTING_INTERVAL has run out, so
    that a write is judged within the interval of it (every pass, when passes are
    further apart than the interval). Pure."""
    return confirmed is None or now - confirmed + pass_interval > LISTING_INTERVAL


def observe_backup(fleet: Fleet, name: str) -> BackupState:
    """The policy's snapshots: its host's newest (the RPO), and every snapshot of its tag
    whoever wrote it (`claims`, judged by `reconciler.engine.snapshot_judgement`)."""
    policy = fleet.backups[name]
    try:
        listed = open_repository(fleet, name).snapshots(tag=name)
    except SecretUnavailable as exc:
        return BackupState(error=str(exc))
    except RepositoryMissing as exc:
        return BackupState(error=str(exc), missing_repository=True)
    except ResticError as exc:
        return BackupState(error=str(exc))
    claims = tuple(claim_of(s) for s in listed[-MAX_CLAIMS:])
    snapshots = [s for s in listed if s.host == policy.host]
    if not snapshots:
        return BackupState(snapshots=0, claims=claims)
    newest = snapshots[-1]
    return BackupState(
        last_snapshot=newest.time,
        snapshots=len(snapshots),
        newest_id=newest.id,
        claims=claims,
    )


def claim_of(snapshot: Snapshot) -> SnapshotClaim:
    """A listed snapshot as what it is: the claims of the host that wrote it."""
    return SnapshotClaim(id=snapshot.id, host=snapshot.host, time=snapshot.time, tags=snapshot.tags)


def reuse_confirmation(
    name: str, rpo_seconds: float, known: Confirmation | None, host: HostState, now: float
) -> BackupState | None:
    """The policy's state from an earlier confirmation, when the host's last backup is
    the snapshot the repository confirmed, and that confirmation is fresher than the RPO;
    else None (ask the repository). Pure."""
    reported = reported_id(host, name)
    if known is None or reported is None:
        return None
    same = known.snapshot_id.startswith(reported) or reported.startswith(known.snapshot_id)
    if not same or now - known.confirmed > min(rpo_seconds, LISTING_INTERVAL):
        return None
    return BackupState(
        last_snapshot=datetime.fromtimestamp(known.snapshot_time, UTC),
        snapshots=known.snapshots,
        newest_id=known.snapshot_id,
        listed=False,
    )


def reported_id(host: HostState, policy: str) -> str | None:
    """The snapshot ID the host reports as the policy's last backup (`ID TIME` in its
    `backup-POLICY.last`), or None."""
    seen = host.files.get(backup_path(policy, "last")) if host.reachable else None
    words = (seen.content or "").split() if seen else []
    return words[0] if len(words) == 2 and words[0] else None
