"""Follow one `reconcile --dry-run` through the code: which files and rooms it visits,
how often a call climbs a floor (a room calling one above it in the layers contract,
which only a callback can do), and how often the flow comes back up to a floor it had
left to call on from there (the visits, room after room, that go up).

Boots 2 real hosts (lab prefix "floors"), converges them with one backup policy, then
runs the dry run in this process under a profiler that records every call between our
own modules (the SSH worker's child process is not followed). Prints the figures, and
with --calls every call that climbs.

    .venv/bin/python -m bench.floors [--calls]
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench.dry_run import POLICY, write_spec
from tests.fleet import lab as fleet_lab

ROOT = Path(__file__).resolve().parents[1]
OURS = ("reconciler", "state", "deploys", "backups")


def rooms_in_order() -> list[str]:
    """The reconciler's rooms from the top, then the packages below them all."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    return [*layers, "reconciler", "deploys", "backups", "state"]


def room_of(filename: str, rooms: list[str]) -> str | None:
    path = Path(filename)
    if not path.is_relative_to(ROOT) or path.relative_to(ROOT).parts[0] not in OURS:
        return None
    parts = path.relative_to(ROOT).with_suffix("").parts
    for depth in (2, 1):
        name = ".".join(parts[:depth])
        if name in rooms:
            return name
    return None


Followed = tuple[set[str], list[str], list[tuple[str, str]]]


def follow(action: Callable[[], object]) -> Followed:
    """Files called into, rooms in the order calls entered them, and climbing calls."""
    rooms = rooms_in_order()
    rank = {room: i for i, room in enumerate(rooms)}
    files: set[str] = set()
    sequence: list[str] = []
    climbs: list[tuple[str, str]] = []
    base = sys._getframe()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or _importing(frame, base):  # not a module's or a class's body
            return
        callee = room_of(frame.f_code.co_filename, rooms)
        if callee is None:
            return
        files.add(frame.f_code.co_filename)
        if not sequence or sequence[-1] != callee:
            sequence.append(callee)
        caller_frame = frame.f_back
        while caller_frame is not None and room_of(caller_frame.f_code.co_filename, rooms) is None:
            caller_frame = caller_frame.f_back
        if caller_frame is None:
            return
        caller = room_of(caller_frame.f_code.co_filename, rooms)
        if caller is not None and rank[callee] < rank[caller]:
            where = (
                f"{Path(caller_frame.f_code.co_filename).relative_to(ROOT)}:{caller_frame.f_lineno}"
            )
            climbs.append((where, f"{callee}.{frame.f_code.co_name}"))

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return files, sequence, climbs


def _importing(frame: FrameType | None, base: FrameType) -> bool:
    """Whether `frame` runs inside a module being imported (below `base`, where the
    followed action was called)."""
    while frame is not None and frame is not base:
        if frame.f_code.co_name == "<module>":
            return True
        frame = frame.f_back
    return False


def back_up(sequence: list[str]) -> int:
    """Times the flow enters a room above the one it was just in (after a return)."""
    rank = {room: i for i, room in enumerate(rooms_in_order())}
    return sum(rank[b] < rank[a] for a, b in itertools.pairwise(sequence))


def main() -> int:
    show_calls = "--calls" in sys.argv
    lab = fleet_lab.up(["b1", "b2"], prefix="floors")
    env = {**os.environ, "BENCH_RESTIC_PASSWORD": "bench-only-password"}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            tmp = Path(scratch)
            spec, journal = tmp / "fleet.yaml", tmp / "journal.db"
            write_spec(lab, ["b1", "b2"], spec)
            spec.write_text(spec.read_text() + POLICY)
            bin_dir = Path(sys.executable).parent
            subprocess.run(
                [str(bin_dir / "reconcile"), str(spec), "--yes", "--journal", str(journal)],
                env=env,
                check=True,
                capture_output=True,
            )
            os.environ.update(env)
            from reconciler.cli.main import main as reconcile

            argv = ["--dry-run", "--journal", str(journal), str(spec)]
            with contextlib.redirect_stdout(io.StringIO()):
                files, sequence, climbs = follow(lambda: reconcile(argv))
    finally:
        fleet_lab.down("floors")
    print("reconcile --dry-run, 2 hosts and a backup policy, followed call by call:")
    print(f"  files visited   {len(files)}")
    print(f"  rooms visited   {len(set(sequence))}: {', '.join(sorted(set(sequence)))}")
    print(f"  calls that climb a floor  {len(climbs)} ({len(set(climbs))} distinct)")
    print(f"  rooms entered in turn     {len(sequence)}; back up a floor {back_up(sequence)}")
    for where, callee in sorted(set(climbs)) if show_calls else ():
        print(f"    {where} -> {callee}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
