"""Follow one `reconcile --dry-run` through the code: which files and rooms it visits,
and how often a call climbs a floor (a room calling one above it in the layers
contract, which only a callback can do).

Boots 2 real hosts (lab prefix "floors"), converges them with one backup policy, then
runs the dry run in this process under a profiler that records every call between our
own modules (the SSH worker's child process is not followed). Prints the figures, and
with --calls every call that climbs.

    .venv/bin/python -m bench.floors [--calls]
"""

from __future__ import annotations

import contextlib
import io
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


def follow(action: Callable[[], object]) -> tuple[set[str], set[str], list[tuple[str, str]]]:
    rooms = rooms_in_order()
    rank = {room: i for i, room in enumerate(rooms)}
    files: set[str] = set()
    visited: set[str] = set()
    climbs: list[tuple[str, str]] = []

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        callee = room_of(frame.f_code.co_filename, rooms)
        if callee is None:
            return
        files.add(frame.f_code.co_filename)
        visited.add(callee)
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
    return files, visited, climbs


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
                files, visited, climbs = follow(lambda: reconcile(argv))
    finally:
        fleet_lab.down("floors")
    print("reconcile --dry-run, 2 hosts and a backup policy, followed call by call:")
    print(f"  files visited   {len(files)}")
    print(f"  rooms visited   {len(visited)}: {', '.join(sorted(visited))}")
    print(f"  calls that climb a floor  {len(climbs)} ({len(set(climbs))} distinct)")
    for where, callee in sorted(set(climbs)) if show_calls else ():
        print(f"    {where} -> {callee}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
