"""`reconcile backup list` and `reconcile backup now`: one policy at a time, on demand."""

from __future__ import annotations

from datetime import UTC, datetime

from backups.restic_repo import ResticError, Snapshot
from reconciler.apply import Report, run_deploys
from reconciler.apply_backups import backup_secrets
from reconciler.errors import PermanentError, TemporaryError
from reconciler.journal import Journal
from reconciler.observe import ObserveSettings
from reconciler.observe_backups import open_repository
from state.load import LoadedFleet
from state.secrets import SecretUnavailable


class BackupFailed(TemporaryError, RuntimeError):
    """A backup did not run through; the message says where it stopped."""


class UnknownPolicy(PermanentError, LookupError):
    """No backup policy of that name in the state file."""


def _policy(loaded: LoadedFleet, name: str) -> None:
    if name not in loaded.fleet.backups:
        known = ", ".join(sorted(loaded.fleet.backups)) or "none"
        raise UnknownPolicy(f"no backup policy {name!r} in {loaded.file}; known: {known}")


def list_snapshots(loaded: LoadedFleet, name: str) -> list[Snapshot]:
    """The policy's snapshots, oldest first."""
    _policy(loaded, name)
    policy = loaded.fleet.backups[name]
    try:
        return open_repository(loaded.fleet, name).snapshots(tag=name, host=policy.host)
    except (SecretUnavailable, ResticError) as exc:
        raise BackupFailed(f"backup {name}: {exc}") from None


def render_snapshots(loaded: LoadedFleet, rows: dict[str, list[Snapshot]]) -> str:
    now = datetime.now(UTC)
    out = [f"{'POLICY':<14} {'SNAPSHOT':<9} {'TIME (UTC)':<20} {'AGE':>8}  HOST      RPO"]
    for name, snapshots in rows.items():
        rpo = loaded.fleet.backups[name].rpo
        if not snapshots:
            out.append(f"{name:<14} {'-':<9} {'-':<20} {'-':>8}  -         no snapshot yet")
        for snap in snapshots:
            age = now - snap.time
            mark = "ok" if snap is not snapshots[-1] or age <= rpo else "BREACHED"
            out.append(
                f"{name:<14} {snap.short_id:<9} "
                f"{snap.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} "
                f"{int(age.total_seconds() // 60):>7}m  {snap.host:<9} {mark}"
            )
    return "\n".join(out) + "\n"


def backup_now(loaded: LoadedFleet, name: str, journal: Journal, report: Report) -> Snapshot:
    """Converge the policy's host-side files, run its unit and wait; return the new snapshot."""
    _policy(loaded, name)
    policy = loaded.fleet.backups[name]
    repository = open_repository(loaded.fleet, name)
    if not repository.exists():
        if not policy.init:
            raise BackupFailed(
                f"backup {name}: repository {policy.repository} is not "
                "initialised; set init: true or run restic init"
            )
        repository.init()
        report(f"initialised {policy.repository}")
    before = {s.id for s in list_snapshots(loaded, name)}
    report(f"backup {name}: converging its files on {policy.host}, then running it")
    work = {policy.host: [{"kind": "backup", "name": name}]}
    secrets, failed = backup_secrets(loaded, work, journal.path.parent)
    if failed:
        raise BackupFailed(next(iter(failed.values())))
    settings = ObserveSettings()
    for step in (work, {policy.host: [{"kind": "backup_now", "name": name}]}):
        outcome = run_deploys(loaded, step, settings, report, secrets)[policy.host]
        if outcome.error:
            raise BackupFailed(f"backup {name} on {policy.host}: {outcome.error}")
    new = [s for s in list_snapshots(loaded, name) if s.id not in before]
    if not new:
        raise BackupFailed(f"backup {name}: the unit ran but no new snapshot appeared")
    kept = apply_retention(loaded, name)
    report(f"backup {name}: retention kept {len(kept)} snapshot(s)")
    return new[-1]


def apply_retention(loaded: LoadedFleet, name: str) -> list[Snapshot]:
    """`forget --prune` with the policy's retention, run centrally; returns what is kept.

    Hosts only ever add snapshots; deleting them is the controller's job alone.
    """
    _policy(loaded, name)
    policy = loaded.fleet.backups[name]
    try:
        open_repository(loaded.fleet, name).forget(policy.retention, tag=name, host=policy.host)
    except (SecretUnavailable, ResticError) as exc:
        raise BackupFailed(f"backup {name}: retention failed: {exc}") from None
    return list_snapshots(loaded, name)
