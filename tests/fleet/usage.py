"""Run a command and say what it took of the machine: wall time, CPU busy (all cores,
from /proc/stat), the peak of memory in use and of the 1-minute load average, sampled
every second. The command's exit status is passed on.

    python -m tests.fleet.usage -- pytest tests/integration -n 3
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Peaks:
    memory_used_kib: int = 0
    load_1m: float = 0.0


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _memory_used_kib() -> int:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])


def _sample(peaks: Peaks, done: threading.Event) -> None:
    while not done.wait(1.0):
        peaks.memory_used_kib = max(peaks.memory_used_kib, _memory_used_kib())
        peaks.load_1m = max(peaks.load_1m, float(Path("/proc/loadavg").read_text().split()[0]))


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    peaks, done = Peaks(memory_used_kib=_memory_used_kib()), threading.Event()
    sampler = threading.Thread(target=_sample, args=(peaks, done), daemon=True)
    busy0, total0 = _cpu_ticks()
    started = time.monotonic()
    sampler.start()
    status = subprocess.call(command)
    done.set()
    wall = time.monotonic() - started
    busy1, total1 = _cpu_ticks()
    cores = len(
        [
            line
            for line in Path("/proc/stat").read_text().splitlines()
            if line[:3] == "cpu" and line[3:4].isdigit()
        ]
    )
    busy_share = (busy1 - busy0) / max(total1 - total0, 1)
    print(
        f"usage: wall {wall:.0f}s, CPU busy {busy_share:.0%} of {cores} cores "
        f"({busy_share * cores * wall:.0f} core-seconds), peak memory in use "
        f"{peaks.memory_used_kib / 1048576:.1f} GiB, peak 1-minute load {peaks.load_1m:.1f}",
        flush=True,
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
