"""The state-file watch coalesces an editor's save into one reload, at the default quiet time.

Real files and inotify (watchfiles), no hosts. Each pattern below is how a real editor
or tool saves; each save must wake the loop exactly once, and the file it then reads
must be the whole new version, never a half-written one.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.daemon.spec_source import watch_spec_file
from state.spec.controller import ReconcilerSettings

OLD = "version: 1\n" + "# old\n" * 3000
NEW = "version: 1\n" + "# new\n" * 3000  # 18 KB: several write() calls for chunked savers


def write_rename(path: Path) -> None:
    """VS Code, emacs, vim with writebackup: a temporary file, renamed over the original."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(NEW)
    os.rename(temp, path)


def backup_then_write(path: Path) -> None:
    """vim with backupcopy=no: rename the original away, write a new file, drop the backup."""
    backup = path.with_name(f"{path.name}~")
    os.rename(path, backup)
    path.write_text(NEW)
    backup.unlink()


def truncate_write(path: Path) -> None:
    """nano and most editors in place: truncate, then write in 4 KiB chunks."""
    with path.open("w") as file:
        for start in range(0, len(NEW), 4096):
            file.write(NEW[start : start + 4096])
            file.flush()


def several_writes(path: Path) -> None:
    """A tool that writes a file in several opens, a few milliseconds apart."""
    path.write_text(NEW[: len(NEW) // 3])
    for part in (NEW[len(NEW) // 3 : 2 * len(NEW) // 3], NEW[2 * len(NEW) // 3 :]):
        time.sleep(0.005)
        with path.open("a") as file:
            file.write(part)


def sed_in_place(path: Path) -> None:
    """`sed -i`: a temporary file in the same directory, renamed over."""
    subprocess.run(["sed", "-i", "s/# old/# new/", str(path)], check=True)


@pytest.mark.parametrize(
    "save", [write_rename, backup_then_write, truncate_write, several_writes, sed_in_place]
)
def test_each_save_is_one_reload_of_the_whole_new_file(
    tmp_path: Path, save: Callable[[Path], None]
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(OLD)
    quiet = ReconcilerSettings().debounce
    stop = threading.Event()
    seen: list[tuple[float, str]] = []
    watcher = threading.Thread(
        target=watch_spec_file,
        args=(path, quiet, stop, lambda: seen.append((time.perf_counter(), path.read_text()))),
    )
    watcher.start()
    try:
        time.sleep(0.3)  # the watch is set up
        for _ in range(3):
            count, saved = len(seen), time.perf_counter()
            save(path)
            deadline = time.perf_counter() + 5
            while len(seen) == count and time.perf_counter() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # room for a second, wrong wake-up
            assert len(seen) == count + 1, f"{save.__name__}: {len(seen) - count} reloads"
            assert seen[-1][1] == NEW, f"{save.__name__}: read a partial file"
            assert seen[-1][0] - saved < 1.0  # and promptly: not a long debounce
            path.write_text(OLD)
            time.sleep(0.5)
    finally:
        stop.set()
        watcher.join(timeout=5)
