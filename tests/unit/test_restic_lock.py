"""Retention waits out a live lock: a host's timer may start a backup while the controller
runs `forget`. Real restic, a local repository, a real `restic backup` holding the lock."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backups.restic_repo import (
    RepositoryLocked,
    ResticError,
    ResticRepo,
    WrongPassword,
    _classify,
)
from state.secrets import Secret
from state.spec.backups import Retention

PASSWORD = "unit-test-password"


@pytest.fixture
def repo(tmp_path: Path) -> ResticRepo:
    repository = ResticRepo(str(tmp_path / "repo"), Secret(PASSWORD), cache_dir=tmp_path / "cache")
    repository.init()
    return repository


@pytest.fixture
def running_backup(repo: ResticRepo) -> Iterator[subprocess.Popen[bytes]]:
    """`restic backup --stdin` holds its lock until its input closes."""
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD}
    backup = subprocess.Popen(
        ["restic", "--repo", repo.url, "--quiet", "backup", "--stdin", "--tag", "agentdata"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    locks = Path(repo.url) / "locks"
    deadline = time.monotonic() + 30
    while not any(locks.iterdir()):
        assert time.monotonic() < deadline, "restic backup never took its lock"
        time.sleep(0.05)
    yield backup
    if backup.poll() is None:
        backup.kill()
        backup.wait()


def finish(backup: subprocess.Popen[bytes], after: float) -> threading.Thread:
    def close() -> None:
        time.sleep(after)
        assert backup.stdin is not None
        backup.stdin.write(b"rows\n")
        backup.stdin.close()
        backup.wait()

    thread = threading.Thread(target=close)
    thread.start()
    return thread


def test_forget_without_a_wait_is_refused_by_the_live_lock(
    repo: ResticRepo, running_backup: subprocess.Popen[bytes]
) -> None:
    with pytest.raises(RepositoryLocked, match="lock was created at"):
        repo.forget(Retention(), tag="agentdata", host="h1", lock_wait=0)


def test_forget_waits_for_the_backup_then_applies_retention(
    repo: ResticRepo, running_backup: subprocess.Popen[bytes]
) -> None:
    heard: list[str] = []
    closing = finish(running_backup, after=1.0)
    removed = repo.forget(Retention(), tag="agentdata", host="h1", on_locked=heard.append)
    closing.join()
    assert removed == 0  # one snapshot, kept by any retention
    assert len(heard) == 1 and "waiting up to 120s" in heard[0], heard
    assert [s.tags for s in repo.snapshots()] == [("agentdata",)]


def test_a_lock_that_outlasts_the_wait_fails_and_says_how_long_it_waited(
    repo: ResticRepo, running_backup: subprocess.Popen[bytes]
) -> None:
    started = time.monotonic()
    with pytest.raises(RepositoryLocked, match=r"after waiting 1s"):
        repo.forget(Retention(), tag="agentdata", host="h1", lock_wait=1.0)
    assert time.monotonic() - started < 60  # not restic's own wait for a live lock (30 min)


def test_an_error_names_restics_fatal_line_whatever_ssh_printed_around_it() -> None:
    """The sftp backend's ssh may write to the same stderr before restic's verdict."""
    stderr = (
        "subprocess ssh: Connection to 198.18.1.12 closed by remote host.\n"
        "Fatal: wrong password or no key found\n"
    )
    error = _classify("snapshots", 1, stderr)
    assert isinstance(error, WrongPassword)
    assert str(error) == "restic snapshots failed (exit 1): Fatal: wrong password or no key found"
    plain = _classify("check", 1, "a\nb\nc\nd\n")
    assert str(plain) == "restic check failed (exit 1): b c d"


def test_a_lock_left_by_a_killed_forget_never_blocks_listing_or_restoring(
    repo: ResticRepo, tmp_path: Path
) -> None:
    """A restic command that takes the exclusive lock (a host's `forget`; here `key
    passwd`, which waits on its stdin holding it) killed with -9 leaves that lock, which
    restic treats as live for 30 minutes. The controller's reads take no lock."""
    source = tmp_path / "data"
    source.mkdir()
    (source / "rows.txt").write_text("row 1\n")
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD}
    backup = ["restic", "--repo", repo.url, "--quiet", "backup", "--tag", "agentdata"]
    subprocess.run([*backup, str(source)], env=env, check=True, capture_output=True)
    exclusive = subprocess.Popen(  # takes the exclusive lock, then waits for its stdin
        ["restic", "--repo", repo.url, "key", "passwd", "--new-password-file", "/dev/stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    locks = Path(repo.url) / "locks"
    deadline = time.monotonic() + 30
    # A lock's file is whole once renamed to its ID: killed while writing it, restic
    # would leave only its temporary file, which is no lock (seen as a flaky failure).
    while not any(re.fullmatch(r"[0-9a-f]{64}", p.name) for p in locks.iterdir()):
        assert time.monotonic() < deadline, "restic never took its lock"
        time.sleep(0.05)
    exclusive.kill()  # -9: the lock stays
    exclusive.wait()
    assert any(locks.iterdir())
    [snapshot] = repo.snapshots(tag="agentdata")
    repo.restore(snapshot.id, tmp_path / "restored")
    restored = next((tmp_path / "restored").rglob("rows.txt"))
    assert restored.read_text() == "row 1\n"
    # Left on this machine by a process that is gone: restic proves it stale, and
    # retention removes it before it runs (one from another host waits 30 minutes).
    assert repo.forget(Retention(keep_last=1), "agentdata", "x", lock_wait=0) == 0
    assert not any(locks.iterdir())


def test_a_live_lock_is_named_by_the_host_it_claims_when_retention_gives_up(
    repo: ResticRepo, running_backup: subprocess.Popen[bytes]
) -> None:
    with pytest.raises(RepositoryLocked) as refused:
        repo.forget(Retention(), tag="agentdata", host="h1", lock_wait=0)
    claimed = f"shared lock .{{8}} claimed by host '{socket.gethostname()}' \\(pid {running_backup.pid}, since "
    assert re.search(f"held by: {claimed}", str(refused.value)), refused.value


def test_check_and_copy_read_past_a_live_lock(
    repo: ResticRepo, running_backup: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    """A check waits on no lock a host holds: it runs again lock-free and says whose
    lock it read past; a copy reads its source lock-free."""
    target = ResticRepo(str(tmp_path / "copy"), Secret(PASSWORD), cache_dir=tmp_path / "cache2")
    target.init_copy_of(repo)
    heard: list[str] = []
    repo.check(on_locked=heard.append)
    assert len(heard) == 1 and "checked lock-free past shared lock" in heard[0], heard
    assert socket.gethostname() in heard[0]
    closing = finish(running_backup, after=0.0)
    closing.join()
    [snapshot] = repo.snapshots(tag="agentdata")
    held = subprocess.Popen(  # another live lock on the source, and the copy goes on
        ["restic", "--repo", repo.url, "--quiet", "backup", "--stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "RESTIC_PASSWORD": PASSWORD},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not repo.locks():
            assert time.monotonic() < deadline, "restic never took its lock"
            time.sleep(0.05)
        target.copy_from(repo, [snapshot.id])
        assert [s.original for s in target.snapshots()] == [snapshot.id]
    finally:
        held.kill()
        held.wait()


def test_a_lost_pack_fails_a_restore_at_once_not_after_restics_retries(
    repo: ResticRepo, tmp_path: Path
) -> None:
    """restic retries a missing file for up to 15 minutes; the file an index names is
    lost, not late, so the restore (a failover's, a drill's) fails at once, saying so."""
    source = tmp_path / "data"
    source.mkdir()
    (source / "rows.bin").write_bytes(os.urandom(3_000_000))
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD}
    backup = ["restic", "--repo", repo.url, "--quiet", "backup", "--tag", "agentdata"]
    subprocess.run([*backup, str(source)], env=env, check=True, capture_output=True)
    for pack in (Path(repo.url) / "data").glob("*/*"):
        pack.unlink()
    [snapshot] = repo.snapshots(tag="agentdata")
    started = time.monotonic()
    with pytest.raises(ResticError, match="a file the repository's index names is missing"):
        repo.restore(snapshot.id, tmp_path / "restored")
    assert time.monotonic() - started < 60  # not restic's 15 minutes of retries


def test_a_failover_names_the_locks_it_read_past_and_is_silent_without_any(
    repo: ResticRepo, running_backup: subprocess.Popen[bytes]
) -> None:
    from reconciler.events.bus import Event, EventBus
    from reconciler.flows.failover_data import name_locks
    from tests.unit.helpers import load_text
    from tests.unit.test_failover_data import POLICY
    from tests.unit.test_spec import BASE

    loaded = load_text(BASE + POLICY)  # the repository itself is `repo`, passed in
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    name_locks(loaded, "agentdata", bus, repo)
    (named,) = events
    assert (named.severity, named.kind, named.host) == ("P1", "backup_locked", "kimi")
    assert "exclusive lock" not in named.message  # a backup's lock is shared
    assert "shared lock" in named.message and "claimed by host" in named.message, named
    finish(running_backup, 0).join()
    events.clear()
    name_locks(loaded, "agentdata", bus, repo)
    assert events == []
