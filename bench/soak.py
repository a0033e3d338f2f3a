"""Soak: RSS and open file descriptors of `reconcile watch` over many passes on real hosts.

Runs the loop with a 1 s full-pass interval against 2 hosts for --passes passes
(default 500), sampling /proc/PID/status (VmRSS) and /proc/PID/fd of the daemon and of
its SSH worker (which keeps its connections open across passes) every few seconds.
Every --disturb-every seconds it alternately stops Ollama by hand (healed by the
`systemctl start` fast path) and edits the agent's config on the host (healed by a
pyinfra deploy cycle over the kept connections), so applies are soaked too.
Prints the start, the end and the least-squares slope per 100 passes. Bounded by
--passes and --max-seconds.

    .venv/bin/python -m bench.soak [--passes 500]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.timing import options
from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec, workers_of

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "reconciler.cli"]
SETTINGS = "reconciler:\n  interval: 1s\n  probe_interval: 1h\n"


def sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open fds) of a live process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def disturb(lab: fleet_lab.Lab, round_: int) -> None:
    """Drift for the loop to heal: a stopped unit, or a config file edited by hand."""
    if round_ % 2:
        fleet_lab.ssh(lab, "h1", "echo 'mode = by hand' > /etc/agent/agent.conf")
    else:
        fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")


def report(label: str, points: list[tuple[int, int]]) -> None:
    quarters = [points[min(len(points) - 1, len(points) * q // 4)][1] for q in range(5)]
    second_half = points[len(points) // 2 :]
    print(
        f"  {label:<16} start {points[0][1]:>7} (pass {points[0][0]})  end {points[-1][1]:>7} "
        f"(pass {points[-1][0]})  slope {slope(points):+.1f} per 100 passes "
        f"(second half {slope(second_half):+.1f}); at 0/25/50/75/100%: {quarters}"
    )


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
    args = options(__doc__, passes=500, max_seconds=3600.0, disturb_every=20.0)
    lab = fleet_lab.up(["h1", "h2"], prefix="soak")
    points: dict[str, list[tuple[int, int]]] = {
        "daemon RSS KiB": [],
        "daemon open fds": [],
        "worker RSS KiB": [],
        "worker open fds": [],
    }
    workers: set[int] = set()
    disturbed = 0
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
                    worker = next(iter(workers_of(proc.pid)), None)
                    worker_rss, worker_fds = sample(worker) if worker else (0, 0)
                except (FileNotFoundError, ProcessLookupError, StopIteration):
                    break
                if count and worker:
                    workers.add(worker)
                    points["daemon RSS KiB"].append((count, rss))
                    points["daemon open fds"].append((count, fds))
                    points["worker RSS KiB"].append((count, worker_rss))
                    points["worker open fds"].append((count, worker_fds))
                if time.monotonic() - started > (disturbed + 1) * args.disturb_every:
                    disturb(lab, disturbed)
                    disturbed += 1
                time.sleep(3)
            proc.wait(timeout=120)
            elapsed = time.monotonic() - started
    finally:
        fleet_lab.down("soak")
    done = points["daemon RSS KiB"][-1][0] if points["daemon RSS KiB"] else 0
    print(
        f"soak: {done} passes in {elapsed:.0f}s ({elapsed / max(done, 1):.2f}s per pass); "
        f"{disturbed} drifts healed (a stopped unit, an edited file, in turn); SSH worker "
        f"processes seen: {len(workers)} (1: the same worker and connections throughout)"
    )
    for label, series in points.items():
        report(label, series)
    return 0


if __name__ == "__main__":
    sys.exit(main())
