"""Restore drills and integrity checks: proving backups restore, not just that they exist.

A drill restores a policy's latest snapshot into a scratch directory on the controller
(restic verifies every file against the snapshot), runs `PRAGMA integrity_check` on each
SQLite copy and `git bundle verify` on each bundle, and times the restore against the
RTO of the services on that host (the runbook's monthly DR test). `check` reads a rotating
subset of the repository's packs, so every pack is read over a cycle.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from backups.repository import open_store
from backups.restic_repo import ResticError
from reconciler.repositories.restorable import ProvenanceError, restorable
from reconciler.store.ledger import Ledger
from reconciler.untrusted.text import shown
from state.load import LoadedFleet
from state.secrets import SecretUnavailable

CHECK_CYCLE = 7  # every pack is read once a week when `check` runs daily


@dataclass
class DrillResult:
    policy: str
    snapshot: str = ""
    seconds: float = 0.0
    files: int = 0
    rto_seconds: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and (self.rto_seconds is None or self.seconds <= self.rto_seconds)


def run_drill(
    loaded: LoadedFleet, name: str, ledger: Ledger, copy: str | None = None
) -> DrillResult:
    """Restore the newest recorded snapshot of `name` (reconciler.repositories.restorable), or
    of its copy `copy`, and verify it; never raises for a bad backup."""
    policy = loaded.fleet.backups[name]
    rtos = [s.rto.total_seconds() for s in loaded.fleet.services.values() if s.host == policy.host]
    result = DrillResult(name, rto_seconds=min(rtos) if rtos else None)
    try:
        repository = open_store(loaded.fleet, name, copy)
        snapshots = restorable(loaded, name, ledger, copy)
        if not snapshots:
            result.problems.append("no recorded snapshot to restore")
            return result
        result.snapshot = snapshots[-1].short_id
        with tempfile.TemporaryDirectory(prefix=f"drill-{name}-") as scratch:
            started = time.monotonic()
            repository.restore(snapshots[-1].id, Path(scratch))  # --verify: contents match
            result.seconds = time.monotonic() - started
            result.files, problems = verify_copies(Path(scratch))
            result.problems += problems
    except (
        SecretUnavailable,
        ResticError,
        ProvenanceError,
        OSError,
        subprocess.SubprocessError,
    ) as exc:
        result.problems.append(shown(str(exc)))
    if result.rto_seconds is not None and result.seconds > result.rto_seconds:
        result.problems.append(
            f"restore took {result.seconds:.1f}s, over the RTO {result.rto_seconds:g}s"
        )
    return result


def entries(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The regular files under a restored `root`, and every entry that is neither a
    regular file nor a directory (a symlink, a FIFO, a device). Nothing is followed: a
    snapshot is a host's word, and its entries are looked at, never through."""
    regular: list[Path] = []
    odd: list[tuple[Path, str]] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            kind = stat.S_IFMT(path.lstat().st_mode)
            if kind == stat.S_IFREG:
                regular.append(path)
            elif kind != stat.S_IFDIR:
                odd.append((path, f"{path.relative_to(root)} is {_KINDS.get(kind, 'odd')}"))
    return regular, odd


def is_copy(path: Path) -> bool:
    """Where a policy's SQLite copies and git bundles are (state.render_backup)."""
    return path.parent.name == "sqlite" or path.name.endswith(".bundle")


_KINDS = {
    stat.S_IFLNK: "a symlink",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}


def verify_copies(root: Path) -> tuple[int, list[str]]:
    """Regular files under a restored `root`, and what is wrong with its SQLite copies
    (integrity check) and git bundles (bundle verify). Only regular files are verified,
    and any other entry where a copy belongs is a problem; an error in one copy is that
    copy's problem, never an exception."""
    try:
        regular, odd = entries(root)
    except OSError as exc:
        return 0, [f"restored snapshot unreadable: {exc}"]
    problems = [
        f"{shown(line)}: refused (a copy must be a regular file)"
        for path, line in odd
        if is_copy(path)
    ]
    for path in regular:
        if path.parent.name == "sqlite":
            problems += _sqlite_problems(path)
        elif is_copy(path):
            problems += _bundle_problems(path)
    return len(regular), problems


def _sqlite_problems(db: Path) -> list[str]:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.Error as exc:
        return [f"{db.name}: not a readable SQLite database: {shown(str(exc))}"]
    return [] if verdict == "ok" else [f"{db.name}: integrity_check says {shown(str(verdict))}"]


def _bundle_problems(bundle: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as empty:
        subprocess.run(["git", "init", "-q", empty], check=True)
        done = subprocess.run(
            ["git", "-C", empty, "bundle", "verify", str(bundle)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode == 0:
        return []
    return [f"{bundle.name}: git bundle verify failed: {shown(done.stderr.strip()[-200:])}"]


PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID


def confine(root: Path) -> list[str]:
    """Make a restored tree fit to put back on a host: every entry that is neither a
    regular file nor a directory (a symlink, wherever it points, a FIFO, a device, a
    socket) is removed, and setuid and setgid bits are cleared. Nothing is followed.
    One line per change, for the report (a host's word: escaped)."""
    regular, odd = entries(root)
    changes = []
    for path, line in odd:
        path.unlink()
        changes.append(f"{shown(line)}: left out (only regular files and directories)")
    for path in [*regular, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]:
        mode = path.lstat().st_mode
        if mode & PRIVILEGE_BITS:
            path.chmod(stat.S_IMODE(mode) & ~PRIVILEGE_BITS)
            changes.append(f"{shown(str(path.relative_to(root)))}: setuid/setgid bit cleared")
    return changes


def rotating_subset(now: datetime | None = None) -> str:
    """Today's `--read-data-subset`, e.g. `3/7`: each day reads the next seventh."""
    day = (now or datetime.now(UTC)).toordinal()
    return f"{day % CHECK_CYCLE + 1}/{CHECK_CYCLE}"


def check_repository(
    loaded: LoadedFleet,
    name: str,
    subset: str | None,
    copy: str | None = None,
    on_locked: Callable[[str], None] | None = None,
) -> str | None:
    """Run `restic check` on the policy's repository (or its copy `copy`), lock-free
    past another's lock (`on_locked` names it); the error text, or None when clean."""
    try:
        open_store(loaded.fleet, name, copy).check(subset, on_locked)
    except (SecretUnavailable, ResticError) as exc:
        return str(exc)
    return None
