"""Benchmark leadership on etcd: a real 3-member cluster (Debian's etcd-server, loopback)
and 2 lab hosts.

- leader-loss-to-takeover: two `reconcile watch` controllers; the leader is SIGKILLed;
  time until the other holds the leader key (goal: at most ttl + 1 s; client-go's
  default is 15 s, Patroni's 30 s). --trials kills (default 3).
- acting after losing etcd: a leader's quorum is taken away (2 of 3 members stopped);
  how long after its last confirmed renewal it stops acting, against its lease's ttl
  (goal: no operation after ttl - retry_timeout, so never while another could lead).
- no-op apply with etcd against local: `reconcile --yes` on a converged fleet, --runs
  each (default 5), median wall time and their ratio (goal <= 1.1).

    .venv/bin/python -m bench.leader
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bench.timing import options
from bench.watch import CLI, ROOT, wait
from reconciler.coordination.leader import EtcdLeadership, who_leads
from state.spec.controller import EtcdCoordination
from tests.fleet import lab as fleet_lab
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.integration.conftest import lab_spec

TTL, RETRY = 5, 1


def settings(cluster: Cluster, prefix: str) -> EtcdCoordination:
    return EtcdCoordination(
        kind="etcd",
        endpoints=cluster.endpoints,
        prefix=prefix,
        ttl=timedelta(seconds=TTL),
        retry_timeout=timedelta(seconds=RETRY),
    )


def spec_text(lab: fleet_lab.Lab, cluster: Cluster | None, prefix: str) -> str:
    loop = "reconciler:\n  interval: 30s\n  probe_interval: 1s\n"
    if cluster is not None:
        endpoints = ", ".join(cluster.endpoints)
        loop += (
            f"  coordination: {{kind: etcd, endpoints: [{endpoints}], prefix: {prefix}, "
            f"ttl: {TTL}s, retry_timeout: {RETRY}s}}\n"
        )
    return lab_spec(lab) + loop


def leader_name(coordination: EtcdCoordination) -> str | None:
    holder = who_leads(coordination).holder
    return holder.name if holder else None


def takeovers(lab: fleet_lab.Lab, cluster: Cluster, tmp: Path, trials: int) -> list[float]:
    spec = tmp / "etcd.yaml"
    spec.write_text(spec_text(lab, cluster, "/bench-takeover"))
    coordination = settings(cluster, "/bench-takeover")
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> None:
        procs[name] = subprocess.Popen(
            [*CLI, "watch", str(spec), "--journal", str(tmp / name / "j.db"),
             "--controller", name, "--max-seconds", "600"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    times: list[float] = []
    try:
        start("c0")
        wait(lambda: leader_name(coordination) == "c0", 60)
        for i in range(trials):
            standby = f"c{i + 1}"
            start(standby)
            time.sleep(3)  # the standby is campaigning
            current = leader_name(coordination)
            assert current is not None
            procs[current].kill()
            procs[current].wait()
            killed = time.monotonic()

            def taken_over(name: str = standby) -> bool:
                return leader_name(coordination) == name

            wait(taken_over, 4 * TTL, step=0.05)
            times.append(time.monotonic() - killed)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=60)
    return times


def acting_after_loss(cluster: Cluster) -> tuple[float, list[float]]:
    """Seconds from the last confirmed renewal to not acting, with operations (a check of
    `acting()` every 10 ms, as the loop does before each action) timed against it."""
    leader = EtcdLeadership(settings(cluster, "/bench-loss"), "lone", lambda _line: None)
    assert leader.campaign()
    operations: list[float] = []
    for member in cluster.members[1:]:
        cluster.stop(member)
    while leader.acting():
        operations.append(time.monotonic())
        time.sleep(0.01)
    stopped = time.monotonic() - leader.renewed
    late = [at - leader.renewed for at in operations if at - leader.renewed > TTL - RETRY]
    leader.stop.set()
    for member in cluster.members[1:]:
        cluster.restart(member)
    cluster.healthy()
    return stopped, late


def no_op_runs(spec: Path, journal: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [*CLI, str(spec), "--yes", "--journal", str(journal)],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    args = options(__doc__, trials=3, runs=5)
    lab = fleet_lab.up(["h1", "h2"], prefix="bench")
    try:
        with etcd_cluster(3) as cluster, tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            local, etcd = tmp / "local.yaml", tmp / "etcd-noop.yaml"
            local.write_text(spec_text(lab, None, ""))
            etcd.write_text(spec_text(lab, cluster, "/bench-noop"))
            no_op_runs(local, tmp / "noop.db", 1)  # converge first
            interleaved: dict[str, list[float]] = {"local": [], "etcd": []}
            for _ in range(args.runs):  # interleaved, so drift hits both alike
                interleaved["local"] += no_op_runs(local, tmp / "noop.db", 1)
                interleaved["etcd"] += no_op_runs(etcd, tmp / "noop.db", 1)
            stopped, late = acting_after_loss(cluster)
            taken = takeovers(lab, cluster, tmp, args.trials)
    finally:
        fleet_lab.down("bench")
    median: Callable[[list[float]], float] = statistics.median
    print(
        f"leader-loss-to-takeover (SIGKILL, ttl {TTL}s, n={len(taken)}): median "
        f"{median(taken):.2f}s, max {max(taken):.2f}s (goal <= ttl + 1 = {TTL + 1}s)"
    )
    print(
        f"acting after losing etcd quorum: stopped {stopped:.2f}s after its last confirmed "
        f"renewal (ttl - retry_timeout = {TTL - RETRY:g}s; its lease expires at {TTL}s); "
        f"operations after ttl - retry_timeout: {len(late)} (goal 0)"
    )
    local_s, etcd_s = median(interleaved["local"]), median(interleaved["etcd"])
    print(
        f"no-op `reconcile --yes` (n={args.runs} each): local {local_s:.2f}s, etcd "
        f"{etcd_s:.2f}s, ratio {etcd_s / local_s:.2f} (goal <= 1.1)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
