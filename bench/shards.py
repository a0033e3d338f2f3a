"""Benchmark shards: one controller against two sharing the fleet (`coordination.shards`),
on --hosts real hosts of the lab (default 64) and a real 3-member etcd, in one run.

Each host runs bench.scale's web service. At the default loop settings (probe round 2 s,
full pass every 60 s) and etcd's default ttl (15 s):
- **one controller** leading every shard, then **two** (each leading half the shards):
  the loop's time per probe round and per full pass of each controller (from its
  /metrics), how busy that keeps its loop, and the heal of a random host's stopped
  service (median and p95 of --trials), with each controller's CPU;
- **a controller's loss**: one of the two is SIGKILLed and at that moment a service on
  a host it led is stopped: the time until the other leads every shard, and until that
  service answers again (how long its hosts went unwatched).

Bounded: --trials heals per setting (default 5), --idle seconds of sampling (default
20), each wait with a deadline; the controllers get SIGTERM and the lab is torn down.

    .venv/bin/python -m bench.shards [--hosts 64] [--shards 4]
"""

from __future__ import annotations

import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.scale import BIN, PORT, heal_times, write_spec
from bench.timing import options, timed
from bench.watch import cpu_seconds, descendants, healthy, machine, p95, wait
from reconciler.coordination.leader import who_leads
from state.load import load_fleet
from state.shards import shard_map
from state.spec.controller import EtcdCoordination, ReconcilerSettings
from tests.fleet import lab as fleet_lab
from tests.fleet.etcd_cluster import etcd_cluster
from tests.fleet.scrape import pass_seconds, probe_passes

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "shards"
PORTS = ("127.0.0.1:9321", "127.0.0.1:9322")


@dataclass
class Loop:
    """One controller's figures over the sampling window."""

    round_s: float
    full_s: float
    cpu_s_per_s: float
    hosts: int = 0  # the hosts of the shards it led

    @property
    def busy(self) -> float:
        settings = ReconcilerSettings()
        return self.round_s / settings.probe_interval.total_seconds() + (
            self.full_s / settings.interval.total_seconds()
        )


def controller(name: str, spec: Path, tmp: Path, metrics: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "reconcile"), "watch", str(spec), "--journal", str(tmp / name / "j.db"),
         "--controller", name, "--http", metrics, "--max-seconds", "1800"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(tmp / f"{name}.log").open("wb"),
    )  # fmt: skip


def leaders(coordination: EtcdCoordination) -> list[str | None]:
    return [s.holder.name if s.holder else None for s in who_leads(coordination).shards]


def sample(procs: dict[str, subprocess.Popen[bytes]], idle: float) -> dict[str, Loop]:
    """Each controller's loop over `idle` seconds, once it has made two probe rounds."""
    metrics = dict(zip(procs, PORTS, strict=False))
    for address in metrics.values():

        def serving(address: str = address) -> bool:
            return healthy(f"http://{address}/metrics")

        def probing(address: str = address) -> bool:
            return probe_passes(address) >= 2

        wait(serving, timeout=60)
        wait(probing, timeout=180)
    pids = {name: descendants(proc.pid) for name, proc in procs.items()}
    before = {name: pass_seconds(metrics[name], "probe") for name in procs}
    cpu = {name: cpu_seconds(pids[name]) for name in procs}
    started = time.monotonic()
    time.sleep(idle)
    elapsed = time.monotonic() - started
    loops = {}
    for name in procs:
        total, count = pass_seconds(metrics[name], "probe")
        full, fulls = pass_seconds(metrics[name], "full")
        rounds = max(count - before[name][1], 1)
        loops[name] = Loop(
            (total - before[name][0]) / rounds,
            full / max(fulls, 1),
            (cpu_seconds(pids[name]) - cpu[name]) / elapsed,
        )
    return loops


def stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        proc.wait(timeout=120)


def main() -> int:
    args = options(__doc__, hosts=64, shards=4, trials=5, idle=20.0)
    figures: dict[str, float] = {}
    loops: dict[str, dict[str, Loop]] = {}
    heals: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as name, etcd_cluster(3) as cluster:
        tmp = Path(name)
        spec = tmp / "fleet.yaml"
        try:
            lab = fleet_lab.up([f"s{i}" for i in range(1, args.hosts + 1)], prefix=PREFIX)
            write_spec(lab, spec)
            endpoints = ", ".join(cluster.endpoints)
            spec.write_text(
                spec.read_text() + "reconciler:\n  coordination: {kind: etcd, "
                f"endpoints: [{endpoints}], prefix: /bench-shards, shards: {args.shards}}}\n"
            )
            loaded = load_fleet(spec)
            coordination = loaded.fleet.reconciler.coordination
            assert isinstance(coordination, EtcdCoordination)
            of_host = shard_map(loaded.fleet, args.shards)
            figures["first converge"] = timed(
                [str(BIN / "reconcile"), "--yes", "--journal", str(tmp / "cli.db"), str(spec)]
            )
            procs = {"c1": controller("c1", spec, tmp, PORTS[0])}
            try:  # one controller leads every shard
                wait(lambda: set(leaders(coordination)) == {"c1"}, timeout=60)
                loops["one"] = sample(procs, args.idle)
                loops["one"]["c1"].hosts = args.hosts
                heals["one"] = heal_times(lab, args.trials, lambda: True)
            finally:
                stop(procs)
            procs = {
                n: controller(n, spec, tmp, p) for n, p in zip(("c1", "c2"), PORTS, strict=True)
            }
            try:  # two controllers share the shards
                wait(lambda: set(leaders(coordination)) == {"c1", "c2"}, timeout=90)
                loops["two"] = sample(procs, args.idle)
                held = leaders(coordination)
                for who, loop in loops["two"].items():
                    loop.hosts = sum(held[shard] == who for shard in of_host.values())
                heals["two"] = heal_times(lab, args.trials, lambda: True)
                lost = random.choice(
                    [h for h in lab.hosts if held[of_host[h.name]] == "c1"]
                )  # a host the killed controller led
                url = f"http://{lost.address}:{PORT}/api/tags"
                procs["c1"].kill()
                killed = time.monotonic()
                unit = shlex.quote(f"web-{lost.name}")
                fleet_lab.ssh(lab, lost.name, f"systemctl stop -- {unit}")
                figures["takeover"] = wait(
                    lambda: set(leaders(coordination)) == {"c2"}, timeout=120, step=0.1
                )
                wait(lambda: healthy(url), timeout=180)
                figures["unwatched"] = time.monotonic() - killed
            finally:
                stop(procs)
        finally:
            fleet_lab.down(PREFIX)
    settings = ReconcilerSettings()
    print(f"machine: {machine()}")
    print(
        f"{args.hosts} hosts in {args.shards} shards; probe round "
        f"{settings.probe_interval.total_seconds():g}s, full pass every "
        f"{settings.interval.total_seconds():g}s, etcd ttl 15s; first converge "
        f"(a one-shot run, every shard) {figures['first converge']:.1f}s"
    )
    print(
        f"{'controllers':>11} {'hosts each':>10} {'round':>7} {'full pass':>9} "
        f"{'loop busy':>9} {'CPU s/s':>8} {'heal median/p95':>16}"
    )
    for setting, count in (("one", 1), ("two", 2)):
        for who, loop in loops[setting].items():
            heal = f"{statistics.median(heals[setting]):.2f}/{p95(heals[setting]):.2f}s"
            print(
                f"{count:>11} {loop.hosts:>10} {loop.round_s:>6.2f}s "
                f"{loop.full_s:>8.2f}s {100 * loop.busy:>8.0f}% {loop.cpu_s_per_s:>8.2f} "
                f"{heal:>16}  ({who})"
            )
    one = loops["one"]["c1"].busy
    two = max(loop.busy for loop in loops["two"].values())
    heal_ratio = statistics.median(heals["two"]) / statistics.median(heals["one"])
    print(f"ratio two controllers / one: loop busy {two / one:.2f}, heal median {heal_ratio:.2f}")
    print(
        f"a controller's loss: the other leads every shard after {figures['takeover']:.1f}s "
        f"(ttl 15s); a service stopped on one of its hosts at the kill answers again after "
        f"{figures['unwatched']:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
