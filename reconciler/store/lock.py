"""One apply per host at a time: an flock'ed lock file per host, naming its holder.

The lock is keyed on what is changed, the hosts (their address and port), not on a
state file's name: two state files naming the same host, or a person's run and the
daemon, never deploy to it together. Host locks are taken in one global order, so two
runs over overlapping hosts cannot deadlock.

Each file holds the holder's owner, pid, host and start time as JSON. The kernel drops
an flock when its process dies, so a lock whose process is gone is free; its stale
metadata is reported as a takeover so the log shows what happened.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from reconciler.errors import TemporaryError
from state.spec.fleet import Fleet


class LockHeld(TemporaryError, TimeoutError):
    """Another reconcile holds the lock; the message names it."""


def host_lock_path(directory: Path, address: str, port: int) -> Path:
    key = hashlib.sha256(f"{address}:{port}".encode()).hexdigest()[:16]
    return directory / "locks" / f"host-{key}.lock"


@contextlib.contextmanager
def hosts_lock(
    directory: Path,
    fleet: Fleet,
    timeout: float,
    report: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Hold the lock of every host of `fleet` for the block (see `state_lock`)."""
    paths = sorted({host_lock_path(directory, h.address, h.ssh_port) for h in fleet.hosts.values()})
    deadline = clock() + timeout
    with contextlib.ExitStack() as held:
        for path in paths:
            remaining = max(0.0, deadline - clock())
            held.enter_context(state_lock(path, remaining, report, clock, stated=timeout))
        yield


def _holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        data: dict[str, Any] = json.loads(handle.read() or "{}")
    except ValueError:
        return {}
    return data


def describe(holder: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (
        f"{holder.get('owner', '?')} (pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, since {started})"
    )


@contextlib.contextmanager
def state_lock(
    path: Path,
    timeout: float,
    report: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    stated: float | None = None,
) -> Iterator[None]:
    """Hold the lock for the block; wait up to `timeout` s, then raise LockHeld (whose
    message states `stated`, the caller's whole timeout, when given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = clock() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    raise LockHeld(
                        f"a host of this fleet is locked by {describe(_holder(handle))}; "
                        f"gave up after {stated if stated is not None else timeout:g}s "
                        "(--lock-timeout)"
                    ) from None
                time.sleep(0.2)
        stale = _holder(handle)
        if stale:
            report(f"took over a stale lock from {describe(stale)}: its process is gone")
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "owner": getpass.getuser(),
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.time(),
                }
            )
        )
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
