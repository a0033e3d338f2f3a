"""Soak: RSS and open file descriptors of `reconcile watch` over many passes on real hosts.

Runs the loop with a 1 s full-pass interval against 2 hosts for --passes passes
(default 500), sampling /proc/PID/status (VmRSS) and /proc/PID/fd every few seconds.
Prints the start, the end and the least-squares slope per 100 passes. Bounded by
--passes and --max-seconds.

    .venv/bin/python -m bench.soak [--passes 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "reconciler.cli"]
SETTINGS = "reconciler:\n  interval: 1s\n  probe_interval: 1h\n"


def sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open fds) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def passes(journal_path: Path, state_file: Path) -> int:
    journal = Journal(journal_path)
    try:
        saved = journal.loop_state(str(state_file.resolve()))
    finally:
        journal.close()
    return int(saved[1].get("passes", 0)) if saved else 0


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares growth per 100 passes."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points) or 1.0
    return 100 * sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=500)
    parser.add_argument("--max-seconds", type=float, default=3600)
    args = parser.parse_args()
    lab = fleet_lab.up(["h1", "h2"], prefix="soak")
    rss_points: list[tuple[int, int]] = []
    fd_points: list[tuple[int, int]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec, journal = Path(tmp) / "fleet.yaml", Path(tmp) / "journal.db"
            spec.write_text(lab_spec(lab, SETTINGS))
            subprocess.run(
                [*CLI, str(spec), "--yes", "--journal", str(journal)],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            started = time.monotonic()
            proc = subprocess.Popen(
                [
                    *CLI,
                    "watch",
                    str(spec),
                    "--journal",
                    str(journal),
                    "--max-passes",
                    str(args.passes),
                    "--max-seconds",
                    str(args.max_seconds),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while proc.poll() is None:
                count = passes(journal, spec)
                try:
                    rss, fds = sample(proc.pid)
                except (FileNotFoundError, ProcessLookupError, StopIteration):
                    break
                if count:
                    rss_points.append((count, rss))
                    fd_points.append((count, fds))
                time.sleep(3)
            proc.wait(timeout=120)
            elapsed = time.monotonic() - started
    finally:
        fleet_lab.down("soak")
    done = rss_points[-1][0] if rss_points else 0
    print(f"soak: {done} passes in {elapsed:.0f}s ({elapsed / max(done, 1):.2f}s per pass)")
    for label, points in (("RSS KiB", rss_points), ("open fds", fd_points)):
        quarters = [points[min(len(points) - 1, len(points) * q // 4)][1] for q in range(5)]
        second_half = points[len(points) // 2 :]
        print(
            f"  {label:<9} start {points[0][1]:>7} (pass {points[0][0]})  end {points[-1][1]:>7} "
            f"(pass {points[-1][0]})  slope {slope(points):+.1f} per 100 passes "
            f"(second half {slope(second_half):+.1f}); at 0/25/50/75/100%: {quarters}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
