"""The one adapter to restic on the controller. Only `backups/` imports `restic` (resticpy).

resticpy keeps its settings in module globals and cannot pass an environment, a timeout
or `-o sftp.command`, which every repository on a fleet host needs; those calls run the
restic binary directly here, with argument lists and `--json`. The password travels in
the child's environment only, never on a command line or in a message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import restic  # resticpy

from state.secrets import Secret
from state.spec.backups import Retention
from state.spec.hosts import Host
from state.ssh import sftp_argv


class ResticError(RuntimeError):
    """restic failed; the message is restic's own last lines (it never echoes the password)."""


class RepositoryMissing(ResticError):
    """There is no repository at that location (not initialised)."""


class WrongPassword(ResticError, PermissionError):
    """The repository exists but the password does not open it."""


class RepositoryLocked(ResticError):
    """Another restic process holds a lock that this command conflicts with."""


class RepositoryUnreachable(ResticError, ConnectionError):
    """The repository's host could not be reached (sftp/ssh failed)."""


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: datetime
    host: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]
    original: str | None = None
    """For a snapshot that `restic copy` wrote: the ID of the snapshot it copies."""
    tree: str = ""
    """The root tree's ID: the content's own hash, kept by a copy with the same chunker."""

    @property
    def short_id(self) -> str:
        return self.id[:8]


@dataclass(frozen=True)
class Lock:
    """A lock file in a repository, as it claims to be: any host that writes to the
    repository can write one, so `hostname` is a host's word (reduced to the characters
    a host name has) and only ever shown, never trusted."""

    id: str
    hostname: str
    pid: int
    time: datetime | None
    exclusive: bool

    def described(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        since = f", since {self.time:%Y-%m-%d %H:%M:%SZ}" if self.time else ""
        return (
            f"{kind} lock {self.id[:8]} claimed by host {self.hostname!r} (pid {self.pid}{since})"
        )


_PRUNES: Counter[str] = Counter()
"""Per repository URL, prunes this process started and ended (odd: one is running)."""

LOCKS_SHOWN = 8
"""At most this many of a repository's locks are read and named (a host can write many)."""

LOCK_READ_TIMEOUT = 15.0
"""restic retries reading a lock that vanished for most of a minute; a lock is named
within this, or not at all."""

LOCK_WAIT = 120.0
"""How long a command that needs the repository to itself waits out another restic's lock.

A host's timer may fire its backup while the controller applies retention (an hourly
schedule elapses during a run); that backup finishes in seconds, and its lock with it.
restic 0.14 (Debian 12) has no `--retry-lock`, so the wait is here."""


def restic_version() -> str:
    """The restic binary's version, through resticpy (which handles this call fine)."""
    info = restic.version()
    return str(info.get("restic_version", info)) if isinstance(info, dict) else str(info)


def sftp_command(host: Host) -> str:
    """`ssh ... -s sftp` reaching `host` the way the reconciler does (its key, its known_hosts)."""
    # restic splits this on spaces: every part is a checked value without spaces.
    return " ".join(sftp_argv(host))


class ResticRepo:
    """One repository, opened with its password; every call is a fresh restic process."""

    def __init__(
        self,
        url: str,
        password: Secret,
        sftp: str | None = None,
        cache_dir: Path | None = None,
        timeout: float = 3600.0,
    ) -> None:
        self.url, self.password, self.sftp, self.timeout = url, password, sftp, timeout
        self.cache_dir = cache_dir

    def _run(
        self,
        args: list[str],
        timeout: float | None = None,
        source: ResticRepo | None = None,
        stdin: str | None = None,
    ) -> str:
        # resticpy gap: no env, no timeout and no `-o sftp.command`; run restic directly.
        command = ["restic", "--repo", self.url, "--json", "--quiet"]
        sftp = self.sftp or (source.sftp if source is not None else None)
        if sftp:  # one for both sides of a copy (state.cross_checks refuses two)
            command += ["--option", f"sftp.command={sftp}"]
        env = {**os.environ, "RESTIC_PASSWORD": self.password.reveal()}
        if source is not None:
            env["RESTIC_FROM_PASSWORD"] = source.password.reveal()
            command += ["--from-repo", source.url]
        if self.cache_dir:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        # Through backups.reap, which waits for the ssh that restic's sftp leaves behind.
        proc = subprocess.Popen(
            [sys.executable, "-m", "backups.reap", *command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        return _finish(proc, args[0], stdin, timeout or self.timeout)

    def init(self) -> None:
        self._run(["init"])

    def init_copy_of(self, source: ResticRepo) -> None:
        """Initialise this repository as a copy of `source`: its chunker parameters, so
        that copied data deduplicates."""
        self._run(["init", "--copy-chunker-params"], source=source)

    def copy_from(self, source: ResticRepo, snapshot_ids: list[str]) -> None:
        """`restic copy` exactly these snapshots of `source` here (restic skips the ones
        copied before); their copies carry `original`. The source is read lock-free
        (`--no-lock` leaves only this side locked): a lock a backed-up host left in its
        repository never stops its copy. Only the controller prunes either side."""
        if snapshot_ids:
            source._beside_prunes(
                lambda: self._run(["copy", "--no-lock", *snapshot_ids], source=source)
            )

    def current_key(self) -> str:
        """The ID of the repository key this password opens. Raises WrongPassword."""
        raw: list[dict[str, Any]] = json.loads(self._run(["key", "list"]) or "[]") or []
        found = [str(k["id"]) for k in raw if k.get("current")]
        if not found:
            raise ResticError("restic key list named no current key")
        return found[0]

    def add_key(self, new_password: Secret) -> None:
        """Add a key for `new_password` (on restic's stdin: never a file or an argument)."""
        self._run(["key", "add", "--new-password-file", "/dev/stdin"], stdin=new_password.reveal())

    def remove_key(self, key_id: str) -> None:
        self._run(["key", "remove", key_id])

    def snapshots(self, tag: str | None = None, host: str | None = None) -> list[Snapshot]:
        """The repository's snapshots (of `tag`, of `host`), oldest first. Lock-free
        (`--no-lock`): a lock a backed-up host left (a `forget` killed, a crash) never
        stops the controller's listing, which only reads snapshot files."""
        args = ["snapshots", "--no-lock"]
        if tag:
            args += ["--tag", tag]
        if host:
            args += ["--host", host]
        raw: list[dict[str, Any]] = json.loads(self._run(args) or "[]") or []
        return sorted((_snapshot(s) for s in raw), key=lambda s: s.time)

    def forget(
        self,
        retention: Retention,
        tag: str,
        host: str,
        lock_wait: float = LOCK_WAIT,
        on_locked: Callable[[str], None] | None = None,
        keep: frozenset[str] = frozenset(),
    ) -> int:
        """Apply the policy's retention, never removing a snapshot in `keep`; prune only
        when snapshots were removed.

        Returns how many snapshots were removed. Pruning reads and rewrites packs, so it
        is skipped when there is nothing to reclaim. Both need the repository to
        themselves: a live lock (a backup running) is waited out for up to `lock_wait`
        seconds, and `on_locked` hears about the wait once. With `keep`, retention is
        asked first (`--dry-run`) and the snapshots it would remove, less `keep`, are
        forgotten by ID.
        """
        args = ["forget", "--tag", tag, "--host", host, "--group-by", "host,tags"]
        args += retention_flags(retention)
        if keep:
            planned: list[dict[str, Any]] = json.loads(self._run([*args, "--dry-run"]) or "[]")
            ids = [s["id"] for g in planned or [] for s in g.get("remove") or []]
            ids = [i for i in ids if i not in keep]
            if ids:
                self._exclusive(["forget", *ids], lock_wait, on_locked)
            removed = len(ids)
        else:
            groups: list[dict[str, Any]] = json.loads(
                self._exclusive(args, lock_wait, on_locked) or "[]"
            )
            removed = sum(len(g.get("remove") or []) for g in groups or [])
        if removed:
            _PRUNES[self.url] += 1  # odd while pruning: lock-free reads beside it retry
            try:
                self._exclusive(["prune"], lock_wait, on_locked)
            finally:
                _PRUNES[self.url] += 1
        return removed

    def _exclusive(
        self, args: list[str], lock_wait: float, on_locked: Callable[[str], None] | None
    ) -> str:
        """`_run` a command that takes restic's exclusive lock, retrying while it is held."""
        deadline = time.monotonic() + lock_wait
        pause = 0.25
        cleared = False
        while True:
            try:
                return self._run(args)
            except RepositoryLocked as exc:
                if on_locked is not None:
                    on_locked(
                        f"restic {args[0]}: the repository is locked by another restic; "
                        f"waiting up to {lock_wait:g}s"
                    )
                    on_locked = None
                if not cleared:  # restic removes only the locks it proves stale
                    cleared = True
                    self.unlock()
                    continue
                if time.monotonic() + pause > deadline:
                    waited = f" (after waiting {lock_wait:g}s)" if lock_wait else ""
                    holders = "; ".join(lock.described() for lock in self.locks())
                    held = f"; held by: {holders}" if holders else ""
                    raise RepositoryLocked(f"{exc}{waited}{held}") from None
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def restore(self, snapshot_id: str, target: Path) -> None:
        """Restore `snapshot_id` into `target`, every file verified. Lock-free, as the
        listing: a restore only reads, and a pack pruned under it fails the verify."""
        self._run(["restore", "--no-lock", snapshot_id, "--target", str(target), "--verify"])

    def check(
        self, read_data_subset: str | None = None, on_locked: Callable[[str], None] | None = None
    ) -> str:
        """`restic check`, lock-free (`--no-lock`): it never waits on a lock a backed-up
        host holds, and never holds one that the controller's retention would wait on.
        Hosts only add to a repository; only the controller prunes, and a check that
        failed while this controller pruned the repository is run again. `on_locked`
        hears who claims the locks present, if any."""
        args = ["check", "--no-lock"]
        args += [f"--read-data-subset={read_data_subset}"] if read_data_subset else []
        if on_locked is not None and (held := self.locks()):
            on_locked(f"checked lock-free past {'; '.join(lock.described() for lock in held)}")
        return self._beside_prunes(lambda: self._run(args))

    def _beside_prunes(self, read: Callable[[], str]) -> str:
        """Run a lock-free `read` of this repository; once more if it failed while this
        process pruned it (a pack it was reading may have gone)."""
        before = _PRUNES[self.url]
        try:
            return read()
        except ResticError:
            if _PRUNES[self.url] == before and before % 2 == 0:
                raise
            return read()

    def unlock(self, remove_all: bool = False) -> None:
        """Remove the locks restic proves stale (unrefreshed for 30 minutes, or of a
        process of this machine that is gone); with `remove_all`, every lock."""
        self._run(["unlock", *(["--remove-all"] if remove_all else [])])

    def locks(self) -> list[Lock]:
        """The repository's locks as they claim to be (the first LOCKS_SHOWN, read
        lock-free); one that vanishes or does not parse while read is left out."""
        found = []
        for lock_id in self._run(["list", "locks", "--no-lock"]).split()[:LOCKS_SHOWN]:
            try:
                raw = json.loads(
                    self._run(["cat", "lock", lock_id, "--no-lock"], LOCK_READ_TIMEOUT)
                )
                found.append(_lock(lock_id, raw))
            except (ResticError, ValueError, TypeError, AttributeError, OverflowError):
                continue
        return found


def retention_flags(retention: Retention) -> list[str]:
    flags = []
    if retention.keep_within is not None:
        flags += ["--keep-within", f"{int(retention.keep_within.total_seconds() // 3600)}h"]
    for name in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"):
        value = getattr(retention, name)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def _snapshot(raw: dict[str, Any]) -> Snapshot:
    return Snapshot(
        raw["id"],
        datetime.fromisoformat(raw["time"]),
        raw.get("hostname", ""),
        tuple(raw.get("tags") or ()),
        tuple(raw.get("paths") or ()),
        raw.get("original"),
        str(raw.get("tree") or ""),
    )


MISSING_FILE = re.compile(r"returned error, retrying after .*(no such file|does not exist)", re.I)
"""restic's backend retries a file that is not there for up to 15 minutes; the files it
loads are named by the repository's own index, written after them, so one that is
missing is lost, not late (a pack deleted on the repository's host)."""


def _finish(proc: subprocess.Popen[str], command: str, stdin: str | None, timeout: float) -> str:
    """restic's output, once it ended within `timeout`; a file it found missing ends it
    at once (see MISSING_FILE). Raises the classified ResticError."""
    out: list[str] = []
    err: list[str] = []
    missing: list[str] = []

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # restic, its ssh and the reaper

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if not missing and MISSING_FILE.search(line):
                missing.append(line.strip()[-300:])
                kill()

    def feed() -> None:  # the input, however long, is written within the same deadline
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin or "")
            proc.stdin.close()

    stdout = proc.stdout
    assert stdout is not None
    threads = [
        threading.Thread(target=read_err, daemon=True),
        threading.Thread(target=lambda: out.append(stdout.read()), daemon=True),
    ]
    if stdin is not None:
        threads.append(threading.Thread(target=feed, daemon=True))
    for thread in threads:
        thread.start()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill()
        proc.wait()
        raise ResticError(f"restic {command} gave no answer within {timeout:g}s") from None
    finally:
        for thread in threads:
            thread.join(30)
    if missing:
        raise ResticError(
            f"restic {command} failed: a file the repository's index names is missing: {missing[0]}"
        )
    if code != 0:
        raise _classify(command, code, "".join(err))
    return "".join(out)


def _lock(lock_id: str, raw: dict[str, Any]) -> Lock:
    claimed = str(raw.get("hostname", ""))
    hostname = "".join(c for c in claimed if c.isascii() and (c.isalnum() or c in ".-_"))[:64]
    try:
        when: datetime | None = datetime.fromisoformat(str(raw.get("time", ""))[:26])
    except ValueError:
        when = None
    return Lock(
        lock_id[:64], hostname or "?", int(raw.get("pid", 0)), when, bool(raw.get("exclusive"))
    )


def _classify(command: str, code: int, stderr: str) -> ResticError:
    lines = stderr.strip().splitlines()
    # restic's own verdict, not whatever its sftp ssh printed around it (in any order)
    fatal = [line for line in lines if line.startswith("Fatal:")]
    tail = " ".join(fatal[-1:] or lines[-3:])
    message = f"restic {command} failed (exit {code}): {tail}"
    lowered = stderr.lower()
    if "wrong password" in lowered:
        return WrongPassword(message)
    if (
        "is there a repository at the following location" in lowered
        or "repository does not exist" in lowered
    ):
        return RepositoryMissing(message)
    if "already locked" in lowered:
        return RepositoryLocked(message)
    if "unable to start the sftp session" in lowered or "connection refused" in lowered:
        return RepositoryUnreachable(message)
    return ResticError(message)
