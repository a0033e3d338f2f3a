"""Benchmark `reconcile watch` at its defaults against a bare polling loop, on 2 real hosts.

All in one run, on the same hosts:
- **heal**: `systemctl stop ollama` by hand, at a random moment, until its health check
  (`/api/tags`) answers again. The peer is the limit for a poller, a *bare loop*
  (BARE_LOOP below): bash on the controller checks `systemctl is-active` over one kept
  SSH connection (an OpenSSH ControlMaster) every probe interval, and runs
  `systemctl start` when the unit is down. Both poll at the same interval (the default
  `probe_interval`). The loop also journals, gates on health and verifies.
- **CPU of one probe pass** on the controller (the daemon and its SSH worker) and on the
  host (all its processes, less its own idle CPU over the same time), against the same
  for one check of the bare loop.
- **edit-to-live**: saving a config edit to the state file until the new file is on the
  host (polled over a kept connection every 20 ms).

Bounded: --trials heals each (default 10), --edits edits (default 5), --idle seconds of
CPU sampling (default 30), then SIGTERM.

    .venv/bin/python -m bench.watch
"""

from __future__ import annotations

import os
import platform
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.timing import options
from reconciler.store.journal import Journal
from state.spec.controller import ReconcilerSettings
from tests.fleet import lab as fleet_lab
from tests.fleet.scrape import probe_passes
from tests.integration.conftest import lab_spec

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "reconciler.cli"]
METRICS = "127.0.0.1:9318"
UNIT = "ollama.service"
BARE_LOOP = (
    'while :; do ssh -o ControlPath="$1" x systemctl is-active -q {unit} '
    '|| ssh -o ControlPath="$1" x systemctl start {unit}; sleep {interval}; done'
)
TICK = os.sysconf("SC_CLK_TCK")


class Kept:
    """One SSH connection to a host kept open (ControlMaster); commands reuse it."""

    def __init__(self, lab: fleet_lab.Lab, host: str, control: Path) -> None:
        self.control = str(control)
        self.options = [*fleet_lab.ssh_options(lab), "-o", f"ControlPath={self.control}"]
        self.target = f"root@{lab.host(host).address}"
        self.master = subprocess.Popen(
            ["ssh", *self.options, "-o", "ControlMaster=yes", "-N", self.target]
        )
        wait(lambda: Path(self.control).exists(), timeout=10)

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", *self.options, self.target, command], capture_output=True, text=True
        )

    def close(self) -> None:
        self.master.terminate()
        self.master.wait(timeout=10)


def wait(check: Callable[[], bool], timeout: float = 120.0, step: float = 0.02) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if check():
            return time.perf_counter() - started
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout}s")


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def pass_finished(journal_path: Path) -> bool:
    journal = Journal(journal_path)
    try:
        runs = journal.runs(1)
    finally:
        journal.close()
    return not runs or runs[0].ended is not None


def heals(
    lab: fleet_lab.Lab, trials: int, interval: float, settle: Callable[[], bool]
) -> list[float]:
    """Stop Ollama by hand `trials` times, each at a random phase of the poll; heal times."""
    url = f"http://{lab.host('h2').address}:11434/api/tags"
    times = []
    for _ in range(trials):
        wait(lambda: healthy(url) and settle())
        time.sleep(1 + random.uniform(0, interval))
        fleet_lab.ssh(lab, "h2", f"systemctl stop -- {shlex.quote(UNIT)}")
        times.append(wait(lambda: healthy(url)))
    return times


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes and of their reaped children, in seconds."""
    return sum(_ticks(Path(f"/proc/{pid}/stat").read_text()) for pid in pids) / TICK


def host_cpu(kept: Kept) -> float:
    """CPU seconds of every process on the host (and the children they reaped)."""
    out = kept.run("cat /proc/[0-9]*/stat 2>/dev/null").stdout
    return sum(_ticks(line) for line in out.splitlines() if ")" in line) / TICK


def _ticks(stat: str) -> int:
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15])  # utime stime cutime cstime


def descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += descendants(int(child))
    return found


def idle_cpu(kept: Kept, pids: list[int], seconds: float) -> tuple[float, float]:
    """(controller, host) CPU seconds over `seconds` of nothing to heal."""
    controller, host = cpu_seconds(pids), host_cpu(kept)
    time.sleep(seconds)
    return cpu_seconds(pids) - controller, host_cpu(kept) - host


def edits(lab: fleet_lab.Lab, spec: Path, kept: Kept, journal: Path, count: int) -> list[float]:
    """Save a config edit `count` times; seconds from the save until the file is on h1."""
    latencies = []
    for i in range(count):
        wait(lambda: pass_finished(journal))
        time.sleep(1)
        previous = f"mode = test{i - 1}" if i else "mode = test"
        text = spec.read_text().replace(previous, f"mode = test{i}")
        temp = spec.with_name(".fleet.yaml.swp")
        temp.write_text(text)
        saved = time.perf_counter()
        os.rename(temp, spec)  # how editors save: write a new file, rename it over
        wanted = f"mode = test{i}"

        def live(wanted: str = wanted) -> bool:
            line = shlex.quote(wanted)
            return kept.run(f"grep -qx -- {line} /etc/agent/agent.conf").returncode == 0

        wait(live)
        latencies.append(time.perf_counter() - saved)
    return latencies


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    return f"{platform.node()}: {os.cpu_count()} cores, {model}, Linux {platform.release()}"


def main() -> int:
    args = options(__doc__, trials=10, edits=5, idle=30.0)
    interval = ReconcilerSettings().probe_interval.total_seconds()
    lab = fleet_lab.up(["h1", "h2"], prefix="bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec, journal = Path(tmp) / "fleet.yaml", Path(tmp) / "journal.db"
            spec.write_text(lab_spec(lab))
            subprocess.run(
                [*CLI, str(spec), "--yes", "--journal", str(journal)],
                check=True, capture_output=True, cwd=ROOT,
            )  # fmt: skip
            h1, h2 = Kept(lab, "h1", Path(tmp) / "h1.ctl"), Kept(lab, "h2", Path(tmp) / "h2.ctl")
            host_idle = idle_cpu(h2, [], args.idle)[1]
            # The bare loop: the limit for a poller at this interval.
            script = BARE_LOOP.format(unit=shlex.quote(UNIT), interval=interval)
            bare = subprocess.Popen(["bash", "-c", script, "bare", h2.control])
            bare_cpu = idle_cpu(h2, [bare.pid, h2.master.pid], args.idle)
            bare_heals = heals(lab, args.trials, interval, lambda: True)
            bare.terminate()
            bare.wait(timeout=10)
            # reconcile watch at its defaults.
            watch = subprocess.Popen(
                [*CLI, "watch", str(spec), "--journal", str(journal), "--http", METRICS,
                 "--max-seconds", "1800"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                wait(lambda: healthy(f"http://{METRICS}/metrics"), timeout=30)
                time.sleep(3)
                before = probe_passes(METRICS)
                loop_cpu = idle_cpu(h2, descendants(watch.pid), args.idle)
                probes = probe_passes(METRICS) - before
                loop_heals = heals(lab, args.trials, interval, lambda: pass_finished(journal))
                latencies = edits(lab, spec, h1, journal, args.edits)
            finally:
                watch.send_signal(signal.SIGTERM)
                watch.wait(timeout=120)
                h1.close()
                h2.close()
    finally:
        fleet_lab.down("bench")
    checks = args.idle / interval
    ours, peer = statistics.median(loop_heals), statistics.median(bare_heals)
    print(f"machine: {machine()}")
    print(f"heal: ollama stopped by hand at random moments, probe interval {interval:g}s")
    print(
        f"  reconcile watch (n={len(loop_heals)}): median {ours:.2f}s, p95 {p95(loop_heals):.2f}s"
        f"  (goal: median <= 3.5s)"
    )
    print(
        f"  bare loop       (n={len(bare_heals)}): median {peer:.2f}s, p95 {p95(bare_heals):.2f}s"
    )
    print(f"  ratio {ours / peer:.2f} (goal <= 1.2)")
    print(f"CPU per poll, over {args.idle:g}s idle (host: less its idle {host_idle:.2f}s)")
    print(
        f"  reconcile probe pass (n={probes:g}): controller {1000 * loop_cpu[0] / probes:.1f}ms, "
        f"host {1000 * (loop_cpu[1] - host_idle) / probes:.1f}ms"
    )
    print(
        f"  bare loop check (n~{checks:g}): controller {1000 * bare_cpu[0] / checks:.1f}ms, "
        f"host {1000 * (bare_cpu[1] - host_idle) / checks:.1f}ms"
    )
    print(
        f"edit-to-live (n={len(latencies)}, save by rename until the file is on the host): "
        f"median {statistics.median(latencies):.2f}s, max {max(latencies):.2f}s (goal <= 1.5s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
