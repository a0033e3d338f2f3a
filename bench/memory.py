"""Benchmark the fleet's memory on etcd: what sharing it costs, on --sizes real hosts of
the lab (default 8 and 64) and a real etcd, in one run.

For each size, with bench.scale's web service on every host, at the default loop
settings except `interval: 20s` (a full pass every 20 s, so a window holds some):
- **journal** (no coordination: one controller, its memory in its SQLite journal): the
  heal of a random host's stopped service, median of --trials, the mean time of the
  heal passes that healed them (the controller's /metrics), and edit-to-live (a config
  edit saved to the state file until it is on its host), median of --edits;
- **etcd**: the same heals and edits with one controller on etcd (the backends compared
  alone: a standby on the same 2 cores would take CPU from the hosts' probes too); then,
  a second controller standing by, the etcd requests both make per probe round and per
  full pass (counted by etcd itself, from its /metrics: every unary call and every lease
  keep-alive), the bytes etcd holds for the fleet per host (keys and values under the
  prefix), and the takeover: the leader SIGKILLed, until the other leads (against
  ttl + 1 s).

The ratios are etcd's figure over the journal's, on the same hosts in the same run. A
heal's end-to-end time includes waiting for the next probe round (0 to 2 s, at random),
so its median over 20 trials moves by 10% to 30% between runs; the heal pass's mean is
the part the store can change. Bounded: every wait has a deadline; the controllers get
SIGTERM and the lab is torn down.

    .venv/bin/python -m bench.memory [--sizes 8,64] [--trials 5] [--edits 5] [--idle 10]
"""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.scale import BIN, edit_times, heal_times, write_spec
from bench.shards import controller
from bench.timing import options, timed
from bench.watch import healthy, machine, p95, wait
from reconciler.coordination.etcd import EtcdClient
from reconciler.coordination.leader import who_leads
from reconciler.store.journal import Journal
from state.load import load_fleet
from state.spec.controller import EtcdCoordination
from tests.fleet import lab as fleet_lab
from tests.fleet.etcd_cluster import etcd_cluster
from tests.fleet.scrape import pass_seconds, probe_passes

PREFIX = "memory"
SETTINGS = "reconciler:\n  interval: 20s\n"
ETCD_PREFIX = "/bench-memory"
PORTS = ("127.0.0.1:9331", "127.0.0.1:9332")
UNARY = re.compile(
    r'grpc_server_handled_total\{[^}]*grpc_method="(\w+)"[^}]*grpc_type="unary"[^}]*\} (\S+)'
)
KEEPALIVE = re.compile(
    r'grpc_server_msg_received_total\{[^}]*grpc_method="(LeaseKeepAlive)"[^}]*\} (\S+)'
)


@dataclass
class Size:
    hosts: int
    figures: dict[str, float] = field(default_factory=dict)
    heals: dict[str, list[float]] = field(default_factory=dict)
    edits: dict[str, list[float]] = field(default_factory=dict)


def etcd_calls(endpoint: str) -> dict[str, float]:
    """Every request etcd has answered so far, by method: unary calls (Range, Put, Txn,
    DeleteRange, LeaseGrant, ...) and lease keep-alives."""
    text = httpx.get(f"{endpoint}/metrics", timeout=5).text
    calls: dict[str, float] = {}
    for method, value in [*UNARY.findall(text), *KEEPALIVE.findall(text)]:
        calls[method] = calls.get(method, 0.0) + float(value)
    return calls


def stored_bytes(client: EtcdClient) -> int:
    return sum(len(kv.key) + len(kv.value) for kv in client.get_prefix(ETCD_PREFIX + "/"))


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=120)


def probing(metrics: str) -> None:
    wait(lambda: healthy(f"http://{metrics}/metrics"), timeout=60)
    wait(lambda: probe_passes(metrics) >= 2, timeout=180)


def requests_per_pass(
    endpoint: str, metrics: str, journal: Path, idle: float
) -> tuple[float, float]:
    """(per probe round, per full pass): a window with no full pass gives the first; the
    window up to the next full pass's end, less its rounds, the second. The end of a
    pass is read from the leader's journal (polling /metrics would itself read etcd:
    the page's open incidents and suspension), and /metrics is read outside the windows."""
    fulls = passes(journal)
    wait(lambda: passes(journal) > fulls, timeout=90, step=0.1)
    rounds, fulls = probe_passes(metrics), passes(journal)
    calls = etcd_calls(endpoint)
    time.sleep(idle)
    after = etcd_calls(endpoint)
    made = probe_passes(metrics) - rounds
    assert passes(journal) == fulls, "a full pass in the probe window"
    spent = {m: (after[m] - calls.get(m, 0.0)) / max(made, 1) for m in after}
    print(
        "  per probe round, by method: "
        + ", ".join(f"{m} {v:.1f}" for m, v in sorted(spent.items()) if v),
        flush=True,
    )
    rounds = probe_passes(metrics)
    calls = etcd_calls(endpoint)
    wait(lambda: passes(journal) > fulls, timeout=90, step=0.1)
    after = etcd_calls(endpoint)
    made = probe_passes(metrics) - rounds
    full = {m: after[m] - calls.get(m, 0.0) - spent.get(m, 0.0) * made for m in after}
    print(
        "  per full pass, less its probe rounds, by method: "
        + ", ".join(f"{m} {v:.1f}" for m, v in sorted(full.items()) if abs(v) >= 0.05),
        flush=True,
    )
    return sum(spent.values()), sum(full.values())


def passes(journal: Path) -> int:
    """The leader's full and heal passes so far, as its journal's loop state says."""
    opened = Journal(journal, read_only=True)
    try:
        found = [data for _, data in opened.db.execute("SELECT updated, data FROM loop_state")]
    finally:
        opened.close()
    return sum(int(json.loads(data).get("passes", 0)) for data in found)


def measure(size: int, trials: int, edits: int, idle: float, tmp: Path) -> Size:
    row = Size(size)
    spec = tmp / "fleet.yaml"
    with etcd_cluster(1) as cluster:
        lab = fleet_lab.up([f"m{i}" for i in range(1, size + 1)], prefix=PREFIX)
        try:
            write_spec(lab, spec)
            spec.write_text(spec.read_text() + SETTINGS)
            row.figures["first converge"] = timed(
                [str(BIN / "reconcile"), "--yes", "--journal", str(tmp / "cli.db"), str(spec)]
            )
            alone = controller("j1", spec, tmp, PORTS[0])
            try:
                probing(PORTS[0])
                heals_and_edits(row, "journal", lab, spec, trials, edits, SETTINGS)
            finally:
                stop([alone])
            endpoint = cluster.endpoints[0]
            coordinated = SETTINGS + (
                f"  coordination: {{kind: etcd, endpoints: [{endpoint}], prefix: {ETCD_PREFIX}}}\n"
            )
            spec.write_text(spec.read_text().replace(SETTINGS, coordinated))
            coordination = load_fleet(spec).fleet.reconciler.coordination
            assert isinstance(coordination, EtcdCoordination)
            client = EtcdClient([endpoint], timeout=5.0)
            procs = {"c1": controller("c1", spec, tmp, PORTS[0])}
            try:
                wait(lambda: _leader(coordination) == "c1", timeout=60)
                probing(PORTS[0])
                # The backends compared alone, one controller each on the same machine: a
                # standby on these 2 cores would take CPU from the 64 hosts' probes too.
                heals_and_edits(row, "etcd", lab, spec, trials, edits, coordinated)
                procs["c2"] = controller("c2", spec, tmp, PORTS[1])
                wait(lambda: healthy(f"http://{PORTS[1]}/metrics"), timeout=60)
                per_round, per_full = requests_per_pass(
                    endpoint, PORTS[0], tmp / "c1" / "j.db", idle
                )
                row.figures["per round"], row.figures["per full"] = per_round, per_full
                row.figures["bytes per host"] = stored_bytes(client) / size
                procs["c1"].kill()
                row.figures["takeover"] = wait(
                    lambda: _leader(coordination) == "c2", timeout=120, step=0.05
                )
                row.figures["ttl"] = coordination.ttl.total_seconds()
            finally:
                stop(list(procs.values()))
                client.close()
        finally:
            fleet_lab.down(PREFIX)
    return row


def heals_and_edits(
    row: Size, mode: str, lab: fleet_lab.Lab, spec: Path, trials: int, edits: int, settings: str
) -> None:
    """The leader's (on PORTS[0]) heals end to end, its heal passes' mean time (the
    store's share of a heal, without the probe phase's spread), and edit-to-live."""
    before = pass_seconds(PORTS[0], "heal")
    row.heals[mode] = heal_times(lab, trials, lambda: True)
    after = pass_seconds(PORTS[0], "heal")
    row.figures[f"heal pass {mode}"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
    row.edits[mode] = edit_times(lab, spec, edits, lambda: True, settings)


def _leader(coordination: EtcdCoordination) -> str | None:
    holder = who_leads(coordination).holder
    return holder.name if holder else None


def main() -> int:
    args = options(__doc__, sizes="8,64", trials=5, edits=5, idle=10.0)
    rows = []
    for size in (int(s) for s in str(args.sizes).split(",")):
        with tempfile.TemporaryDirectory() as name:
            rows.append(measure(size, args.trials, args.edits, args.idle, Path(name)))
    print(f"machine: {machine()}")
    print(
        "probe round 2s, full pass every 20s, etcd ttl 15s; heals and edits with one "
        "controller on each backend, requests and takeover with two on etcd"
    )
    print(
        f"{'hosts':>5} {'etcd req/round':>14} {'req/full pass':>13} {'bytes/host':>10} "
        f"{'heal journal':>13} {'heal etcd':>10} {'ratio':>6} {'takeover':>9}"
    )
    for row in rows:
        journal, etcd = row.heals["journal"], row.heals["etcd"]
        ratio = statistics.median(etcd) / statistics.median(journal)
        print(
            f"{row.hosts:>5} {row.figures['per round']:>14.1f} {row.figures['per full']:>13.1f} "
            f"{row.figures['bytes per host']:>10.0f} "
            f"{statistics.median(journal):>6.2f}/{p95(journal):.2f}s "
            f"{statistics.median(etcd):>5.2f}/{p95(etcd):.2f}s {ratio:>6.2f} "
            f"{row.figures['takeover']:>8.2f}s"
        )
        within = row.figures["takeover"] <= row.figures["ttl"] + 1
        print(
            f"      takeover {'within' if within else 'OVER'} ttl + 1 s "
            f"({row.figures['ttl']:g} + 1); first converge {row.figures['first converge']:.1f}s"
        )
    print("the store's share: heal pass (mean, from /metrics) and edit-to-live (median)")
    print(f"{'hosts':>5} {'heal pass journal':>17} {'etcd':>7} {'ratio':>6} "
          f"{'edit journal':>13} {'etcd':>7} {'ratio':>6}")  # fmt: skip
    for row in rows:
        passes = row.figures["heal pass journal"], row.figures["heal pass etcd"]
        edits = statistics.median(row.edits["journal"]), statistics.median(row.edits["etcd"])
        print(
            f"{row.hosts:>5} {passes[0]:>16.3f}s {passes[1]:>6.3f}s "
            f"{passes[1] / max(passes[0], 1e-9):>6.2f} {edits[0]:>12.2f}s {edits[1]:>6.2f}s "
            f"{edits[1] / edits[0]:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
