"""Backup operations on one policy: list, back up now, retention, pick and restore.

Used by the `reconcile backup` commands and by a run (retention after the backups it
made). Raises `BackupFailed` or `UnknownPolicy` with one clear line; prints nothing.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Collection
from pathlib import Path

from backups.repository import open_repository, open_store
from backups.restic_repo import RepositoryMissing, ResticError, Snapshot
from reconciler.apply.context import Report
from reconciler.apply.deploys import run_deploys
from reconciler.errors import PermanentError, TemporaryError
from reconciler.hosts.commands import free_space, reported_snapshot, unpack_tree
from reconciler.hosts.protocol import (
    BackupNowWork,
    BackupPolicyWork,
    RepoAccessWork,
    Timeouts,
    Work,
)
from reconciler.repositories.restorable import (
    ProvenanceError,
    newest_copy,
    record_reported,
    restorable,
)
from reconciler.repositories.secrets import backup_secrets
from reconciler.repositories.verify import confine
from reconciler.store.ledger import Ledger
from reconciler.untrusted.text import shown
from state.load import LoadedFleet
from state.repository import resolve_repository
from state.secrets import SecretUnavailable


class BackupFailed(TemporaryError, RuntimeError):
    """A backup did not run through; the message says where it stopped."""


class UnknownPolicy(PermanentError, LookupError):
    """No backup policy of that name in the state file."""


def require_policy(loaded: LoadedFleet, name: str) -> None:
    if name not in loaded.fleet.backups:
        known = ", ".join(sorted(loaded.fleet.backups)) or "none"
        raise UnknownPolicy(f"no backup policy {name!r} in {loaded.file}; known: {known}")


def list_snapshots(loaded: LoadedFleet, name: str) -> list[Snapshot]:
    """Every snapshot of the policy's tag, whoever wrote it, oldest first (the ledger says
    which ones count: reconciler.repositories.restorable)."""
    require_policy(loaded, name)
    try:
        return open_repository(loaded.fleet, name).snapshots(tag=name)
    except (SecretUnavailable, ResticError) as exc:
        raise BackupFailed(f"backup {name}: {exc}") from None


def backup_now(
    loaded: LoadedFleet, name: str, key_dir: Path, report: Report, ledger: Ledger
) -> Snapshot:
    """Converge the policy's host-side files, run its unit and wait; record the snapshot
    its host reports (reconciler.repositories.restorable) and return it."""
    require_policy(loaded, name)
    policy = loaded.fleet.backups[name]
    repository = open_repository(loaded.fleet, name)
    try:
        before = {s.id for s in repository.snapshots(tag=name, host=policy.host)}
    except RepositoryMissing:
        if not policy.init:
            raise BackupFailed(
                f"backup {name}: repository {policy.repository} is not "
                "initialised; set init: true or run restic init"
            ) from None
        repository.init()
        report(f"initialised {policy.repository}")
        before = set()
    except ResticError as exc:
        raise BackupFailed(f"backup {name}: {exc}") from None
    report(f"backup {name}: converging its files on {policy.host}, then running it")
    run_now: Work = {policy.host: [BackupNowWork(name=name)]}
    converge_policy(loaded, name, key_dir, report, after=run_now)
    snapshot = record_last_backup(loaded, name, ledger, before)
    kept = apply_retention(loaded, name, report, ledger)
    report(f"backup {name}: retention kept {len(kept)} snapshot(s)")
    return snapshot


def record_last_backup(
    loaded: LoadedFleet, name: str, ledger: Ledger, before: Collection[str] = ()
) -> Snapshot:
    """Record the snapshot the policy's host reports for the backup the controller just
    ran there (its `.last`), and return it. Raises BackupFailed when the host reports
    none, one of `before`, or one the repository does not list with fitting claims."""
    policy = loaded.fleet.backups[name]
    reported = reported_snapshot(loaded.fleet.hosts[policy.host], name)
    if reported is None or any(known.startswith(reported) for known in before):
        raise BackupFailed(f"backup {name}: the unit ran but no new snapshot appeared")
    try:
        return record_reported(loaded, name, reported, ledger)
    except ProvenanceError as exc:
        raise BackupFailed(str(exc)) from None


def converge_policy(
    loaded: LoadedFleet, name: str, key_dir: Path, report: Report, after: Work | None = None
) -> None:
    """Deploy the policy's files on its host and its key's confined entry on its
    repository host, then `after` (run next, with the same secrets). Raises BackupFailed."""
    policy = loaded.fleet.backups[name]
    work: Work = {policy.host: [BackupPolicyWork(name=name)]}
    target = resolve_repository(loaded.fleet, policy)
    if target.sftp_host is not None and target.sftp_host != policy.host:
        work[target.sftp_host] = [RepoAccessWork()]
    secrets, failed = backup_secrets(loaded.fleet, work, key_dir)
    if failed:
        raise BackupFailed(next(iter(failed.values())))
    for step in (work, after or {}):
        for host, outcome in run_deploys(loaded, step, Timeouts(), report, secrets).items():
            if outcome.error:
                note = repository_space_note(loaded, name, outcome.error)
                raise BackupFailed(f"backup {name} on {host}: {outcome.error}{note}")


def apply_retention(
    loaded: LoadedFleet, name: str, report: Report, ledger: Ledger | None
) -> list[Snapshot]:
    """`forget --prune` with the policy's retention, run centrally; returns what is kept.

    Hosts only ever add snapshots; deleting them is the controller's job alone. A backup
    the host's timer started meanwhile holds a lock: retention waits for it to finish.
    A snapshot the ledger holds (a generation's newest, until a newer one passed a
    drill) is never forgotten.
    """
    require_policy(loaded, name)
    policy = loaded.fleet.backups[name]
    held = ledger.held(loaded.fleet, name) if ledger is not None else {}
    for snapshot_id, why in held.items():
        report(f"backup {name}: retention keeps {snapshot_id[:8]} ({why})")
    try:
        open_repository(loaded.fleet, name).forget(
            policy.retention,
            tag=name,
            host=policy.host,
            on_locked=lambda waiting: report(f"backup {name}: {waiting}"),
            keep=frozenset(held),
        )
    except (SecretUnavailable, ResticError) as exc:
        raise BackupFailed(f"backup {name}: retention failed: {exc}") from None
    return list_snapshots(loaded, name)


def pick_snapshot(
    loaded: LoadedFleet, name: str, snapshot: str | None, ledger: Ledger, copy: str | None = None
) -> tuple[Snapshot, str | None]:
    """The recorded snapshot to restore, and the copy it is in (None: the repository):
    the newest, or the one named by an ID prefix, from the copy `copy` when given. When
    the repository cannot be listed and no snapshot is named, the newest recorded in a
    copy. A snapshot the controller did not record is refused, whatever its tags say."""
    require_policy(loaded, name)
    try:
        snapshots = restorable(loaded, name, ledger, copy)
    except ProvenanceError as exc:
        spare = newest_copy(loaded, ledger, name) if copy is None and not snapshot else None
        if spare is not None:
            return pick_snapshot(loaded, name, None, ledger, spare[0])
        copies = ", ".join(sorted(loaded.fleet.backups[name].copies))
        hint = f" (restore from a copy with --copy NAME: {copies})" if copies and not copy else ""
        raise BackupFailed(f"{exc}{hint}") from None
    if not snapshots:
        raise BackupFailed(f"backup {name}: no recorded snapshot to restore")
    if snapshot is None:
        return snapshots[-1], copy
    for snap in snapshots:
        if snap.id.startswith(snapshot):
            return snap, copy
    raise UnknownPolicy(
        f"backup {name}: no recorded snapshot {shown(snapshot)!r}; recorded: "
        f"{', '.join(s.short_id for s in snapshots)} (`reconcile backup list` shows the rest)"
    )


def restore_to_host(
    loaded: LoadedFleet,
    name: str,
    snap: Snapshot,
    host_name: str,
    path: str,
    report: Report,
    copy: str | None = None,
) -> int:
    """Restore (verified) on the controller, then unpack into HOST:PATH over SSH; files count."""
    if host_name not in loaded.fleet.hosts:
        raise UnknownPolicy(
            f"unknown host {host_name!r}; known: {', '.join(sorted(loaded.fleet.hosts))}"
        )
    host = loaded.fleet.hosts[host_name]
    with tempfile.TemporaryDirectory(prefix=f"restore-{name}-") as scratch:
        report(f"backup {name}: restoring snapshot {snap.short_id} (verified by restic)")
        try:
            open_store(loaded.fleet, name, copy).restore(snap.id, Path(scratch))
        except (ResticError, SecretUnavailable) as exc:
            raise BackupFailed(f"backup {name}: restore failed: {exc}") from None
        for change in confine(Path(scratch)):
            report(f"backup {name}: snapshot {snap.short_id}: {change}")
        count = sum(1 for p in Path(scratch).rglob("*") if p.is_file())
        report(f"backup {name}: copying {count} files to {host_name}:{path}")
        script = f"mkdir -p {shlex.quote(path)} && tar -C {shlex.quote(path)} -xf -"
        unpacked = unpack_tree(host, Path(scratch), ["."], script, 3600)
        if not unpacked.ok:
            raise BackupFailed(
                f"backup {name}: copying to {host_name}:{path} failed: {unpacked.error}"
            )
    return count


# restic's words for a write the repository refused: which write meets a full disk first
# (a pack, the index, the snapshot, a lock) decides which of these it prints.
FAILED_WRITE_MARKS = (
    "SSH_FX_FAILURE",
    "unable to save",
    "unable to create lock",
    "no space left on device",
    "server response unexpected: 403",
    "Save(<",
)


def is_failed_write(error: str) -> bool:
    """Whether restic's error says a write to the repository failed."""
    return any(mark in error for mark in FAILED_WRITE_MARKS)


def repository_space_note(loaded: LoadedFleet, name: str, error: str) -> str:
    """For a failed write to a repository on a fleet host, its disk's free space, else ''.

    A full disk reaches restic only as SSH_FX_FAILURE over sftp, and as a refused
    overwrite of the partial pack through the confined append-only transport (`403
    Forbidden`), so report the disk as it is rather than guess.
    """
    target = resolve_repository(loaded.fleet, loaded.fleet.backups[name])
    if not is_failed_write(error) or target.sftp_host is None or target.path is None:
        return ""
    host = loaded.fleet.hosts[target.sftp_host]
    space = free_space(host, target.path)
    if space is None:
        return ""
    free, total = space[0] / 2**20, space[1] / 2**20
    return (
        f"; writes failed and the repository disk on {target.sftp_host} has "
        f"{free:.1f} MiB free of {total:.1f} MiB at {target.path}: is it too small?"
    )
