"""Restoring a backup policy's data to its original paths on another host: a failover's
promotion and a failback carry the failover services' data this way.

The snapshot is restored on the controller (restic verifies every file), its SQLite
copies pass `PRAGMA integrity_check` and its git bundles `git bundle verify`; only then
is anything sent. On the host, the databases' stale `-wal`/`-shm` files go first (SQLite
would replay them onto the restored file), the files are unpacked at their original
paths, and each git repository is cloned from its bundle.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from backups.repository import open_repository
from backups.restic_repo import ResticError, ResticRepo, Snapshot
from reconciler.apply.context import Report
from reconciler.hosts.commands import unpack_tree
from reconciler.repositories.operations import BackupFailed
from reconciler.repositories.restorable import ProvenanceError, restorable
from reconciler.repositories.verify import confine, verify_copies
from reconciler.store.ledger import Ledger
from state.load import LoadedFleet
from state.render_backup import git_bundle, sqlite_copy
from state.secrets import SecretUnavailable

RESTORE_DIR = "/var/lib/fleet-reconciler/restore"


@dataclass(frozen=True)
class Restored:
    policy: str
    snapshot: Snapshot
    files: int
    seconds: float


def newest_snapshot(loaded: LoadedFleet, name: str, ledger: Ledger) -> Snapshot | None:
    """The snapshot a failover, a failback or a drill restores: the one the controller
    recorded last (reconciler.repositories.restorable), whatever any snapshot's tags say."""
    try:
        found = restorable(loaded, name, ledger)
    except ProvenanceError as exc:
        raise BackupFailed(str(exc)) from None
    return found[-1] if found else None


def restore_in_place(
    loaded: LoadedFleet,
    name: str,
    snap: Snapshot,
    host_name: str,
    report: Report,
    repository: ResticRepo | None = None,
) -> Restored:
    """Restore `snap` of policy `name` (from its repository, or `repository`: a copy) to
    its original paths on `host_name`: its SQLite copies and git bundles verified (a bad
    one refuses the restore), only the policy's own paths, only regular files and
    directories, and no setuid or setgid bit."""
    policy = loaded.written.backups[name]
    host = loaded.fleet.hosts[host_name]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"in-place-{name}-") as scratch:
        root, upload = Path(scratch, "snapshot"), Path(scratch, "upload")
        report(f"backup {name}: restoring snapshot {snap.short_id} (verified by restic)")
        try:
            (repository or open_repository(loaded.fleet, name)).restore(snap.id, root)
        except (SecretUnavailable, ResticError) as exc:
            raise BackupFailed(f"backup {name}: restore failed: {exc}") from None
        files, problems = verify_copies(root)
        if problems:
            raise BackupFailed(f"backup {name}: snapshot {snap.short_id}: {'; '.join(problems)}")
        for change in confine(root):  # restored onto a host: a link could point anywhere
            report(f"backup {name}: snapshot {snap.short_id}: {change}")
        moves = [(sqlite_copy(name, db), db) for db in policy.sqlite]
        moves += [(p, p) for p in policy.paths]
        moves += [(git_bundle(name, r), _bundle_on_host(name, i)) for i, r in enumerate(policy.git)]
        for inside, dest in moves:
            source = root / inside.lstrip("/")
            if source.exists():
                target = upload / dest.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(source, target)
        if not upload.exists():
            raise BackupFailed(f"backup {name}: snapshot {snap.short_id} holds none of its paths")
        report(f"backup {name}: unpacking {files} file(s) at their paths on {host_name}")
        entries = sorted(p.name for p in upload.iterdir())
        script = _remote_script(name, policy.sqlite, policy.git)
        unpacked = unpack_tree(host, upload, entries, script, 3600)
        if not unpacked.ok:
            raise BackupFailed(f"unpacking on {host_name} failed: {unpacked.error}")
    return Restored(name, snap, files, time.monotonic() - started)


def _remote_script(name: str, databases: list[str], repositories: list[str]) -> str:
    q = shlex.quote
    steps = ["set -eu"]
    steps += [f"rm -f {q(db + '-wal')} {q(db + '-shm')} {q(db + '-journal')}" for db in databases]
    # Only the top-level entries are packed, and existing directories keep their owner
    # and mode (/root stays 0700): --no-overwrite-dir.
    steps.append("tar -C / --no-overwrite-dir -xpf -")
    # A clone writes a reflog entry, for which git looks up who it is: without a name
    # set, it resolves the host's own name, a 10 s wait on a host whose DNS does not
    # answer (a new VPS, the lab). The restore names itself instead.
    ident = "GIT_COMMITTER_NAME=fleet-reconciler GIT_COMMITTER_EMAIL=fleet-reconciler@localhost"
    for i, repo in enumerate(repositories):
        bundle = _bundle_on_host(name, i)
        steps.append(
            f"rm -rf {q(repo + '.restoring')} && {ident} git clone -q {q(bundle)} "
            f"{q(repo + '.restoring')} && rm -rf {q(repo)} && mv {q(repo + '.restoring')} {q(repo)}"
        )
    return "; ".join(steps)


def _bundle_on_host(name: str, index: int) -> str:
    return f"{RESTORE_DIR}/{name}/{index}.bundle"
