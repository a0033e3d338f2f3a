"""Benchmark how every cost grows with the fleet: 8, 32 and 64 real hosts in one run.

Each host runs one web service: a binary, a config file and a unit, with an HTTP and a
systemd health check (the Ollama stand-in on port 8080, with no model). Per fleet size,
on the lab (prefix "scale"), all against their peers measured on the same hosts:
- **first converge** on freshly booted hosts, and a **no-op converge**: `reconcile
  --yes` against `pyinfra -y` over our own deploys (hosts booted fresh before each
  tool's first converge);
- **converged dry run**: `reconcile --dry-run` against `pyinfra --dry`;
- under `reconcile watch` at its defaults (`--http` on loopback):
  - **probe passes per minute** against the setting, and their **CPU per host**, on
    the controller (the daemon and its SSH worker) over --idle seconds;
  - **controller RSS** (the daemon and its children);
  - **heal**: `systemctl stop` of a random host's service until its HTTP check answers
    again, median and p95 of --trials;
  - **edit-to-live**: a config edit saved to the state file until it is on its host.

Bounded: --sizes (default 8,32,64), --trials heals (default 5), --edits (default 3),
--idle seconds (default 30), each command with a deadline; the lab is torn down.
--watch-sizes (default none) adds fleets measured under `watch` only (one converge by
`reconcile`, no peer): where one controller ends, measured rather than extrapolated.

    .venv/bin/python -m bench.scale [--sizes 8,32,64] [--watch-sizes 200]
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.timing import options, timed
from bench.watch import (
    Kept,
    cpu_seconds,
    descendants,
    healthy,
    host_cpu,
    machine,
    p95,
    pass_finished,
    wait,
)
from state.spec.controller import ReconcilerSettings
from tests.fleet import lab as fleet_lab
from tests.fleet.scrape import pass_seconds, probe_passes

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WEB = ROOT / "tests" / "standins" / "http_standins.py"
PREFIX = "scale"
METRICS = "127.0.0.1:9319"
PORT = 8080


def write_spec(lab: fleet_lab.Lab, path: Path, mode: dict[str, str] | None = None) -> None:
    sha = hashlib.sha256(WEB.read_bytes()).hexdigest()
    lines = ["version: 1", "hosts:"]
    for host in lab.hosts:
        lines.append(
            f"  {host.name}: {{address: {host.address}, ssh_key: {lab.ssh_key}, "
            f"ssh_known_hosts: {lab.known_hosts}}}"
        )
    lines.append("services:")
    for host in lab.hosts:
        content = json.dumps(f"mode = {(mode or {}).get(host.name, 'scale')}\n")
        exec_start = f"/usr/bin/python3 /usr/local/bin/web ollama --port {PORT} --store /var/lib/web/models.json"
        lines += [
            f"  web-{host.name}:",
            f"    host: {host.name}",
            f"    install: {{kind: file, source: {WEB}, sha256: {sha}, dest: /usr/local/bin/web}}",
            f"    unit: {{description: web, exec_start: '{exec_start}'}}",
            f"    config_files: [{{path: /etc/web/web.conf, content: {content}, mode: '0640'}}]",
            f"    health: [{{kind: http, url: 'http://{{address}}:{PORT}/api/tags', json_key: models}}, {{kind: systemd}}]",
            "    rto: 30s",
        ]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Row:
    hosts: int
    figures: dict[str, float] = field(default_factory=dict)
    lists: dict[str, list[float]] = field(default_factory=dict)


def boot(size: int) -> fleet_lab.Lab:
    return fleet_lab.up([f"s{i}" for i in range(1, size + 1)], prefix=PREFIX)


def converges(size: int, tmp: Path, row: Row) -> fleet_lab.Lab:
    """First and no-op converges of both tools, each first on fresh hosts; then the dry
    runs on the converged hosts. Returns the lab, converged by reconcile."""
    spec, journal = tmp / "fleet.yaml", tmp / "journal.db"
    env = {**os.environ, "FLEET_STATE": str(spec)}
    pyinfra = [str(BIN / "pyinfra"), "-y", "deploys/inventory.py", "deploys/fleet.py"]
    lab = boot(size)
    write_spec(lab, spec)
    row.figures["pyinfra first"] = timed(pyinfra, env)
    row.figures["pyinfra no-op"] = timed(pyinfra, env)
    journal.unlink(missing_ok=True)
    lab = converge_once(size, tmp, row)  # fresh hosts again
    row.figures["reconcile no-op"] = timed(_reconcile_yes(tmp))
    dry = [str(BIN / "reconcile"), "--dry-run", "--journal", str(journal), str(spec)]
    peer = [str(BIN / "pyinfra"), "--dry", "deploys/inventory.py", "deploys/fleet.py"]
    # 2: changes pending; on a loaded 2-core machine a probe may time out (it is counted)
    row.figures["reconcile dry"] = statistics.median(timed(dry, allowed=(0, 2)) for _ in range(3))
    row.figures["pyinfra dry"] = statistics.median(timed(peer, env) for _ in range(3))
    return lab


def converge_once(size: int, tmp: Path, row: Row) -> fleet_lab.Lab:
    """A fleet for --watch-sizes: booted and converged by `reconcile` alone."""
    lab = boot(size)
    write_spec(lab, tmp / "fleet.yaml")
    row.figures["reconcile first"] = timed(_reconcile_yes(tmp))
    return lab


def _reconcile_yes(tmp: Path) -> list[str]:
    journal, spec = tmp / "journal.db", tmp / "fleet.yaml"
    return [str(BIN / "reconcile"), "--yes", "--journal", str(journal), str(spec)]


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")), 0)
    return total / 1024


def heal_times(lab: fleet_lab.Lab, trials: int, settled: Callable[[], bool]) -> list[float]:
    """`systemctl stop` of a random host's web service, at a random moment once the fleet
    has `settled`, until its HTTP check answers again: seconds, per trial."""
    heals = []
    for _ in range(trials):
        host = random.choice(lab.hosts)
        url = f"http://{host.address}:{PORT}/api/tags"

        def answers(url: str = url) -> bool:
            return healthy(url)

        wait(lambda: answers() and settled(), timeout=120)
        time.sleep(1 + random.uniform(0, 2))
        fleet_lab.ssh(lab, host.name, f"systemctl stop -- {shlex.quote('web-' + host.name)}")
        heals.append(wait(answers, timeout=180))
    return heals


def edit_times(
    lab: fleet_lab.Lab, spec: Path, count: int, settled: Callable[[], bool], text: str = ""
) -> list[float]:
    """A config edit of a random host's web service saved to `spec` (written whole, then
    renamed over it, as an editor does) once the fleet has `settled`, until the host's
    file has it: seconds, per edit. `text` follows the hosts' part (the reconciler's
    settings)."""
    edits = []
    for i in range(count):
        host = random.choice(lab.hosts)
        wait(settled, timeout=120)
        time.sleep(1)
        temp, mode = spec.with_name(".fleet.yaml.swp"), f"edit{i}-{time.time_ns()}"
        write_spec(lab, temp, {host.name: mode})  # unique: never live before it is saved
        temp.write_text(temp.read_text() + text)
        saved = time.perf_counter()
        os.rename(temp, spec)
        wanted = f"grep -qx {shlex.quote(f'mode = {mode}')} /etc/web/web.conf"

        def live(name: str = host.name, wanted: str = wanted) -> bool:
            done = fleet_lab.ssh(lab, name, f"{wanted} && echo yes", check=False)
            return done.strip() == "yes"

        wait(live, timeout=180, step=0.05)
        edits.append(time.perf_counter() - saved)
    return edits


def under_watch(
    lab: fleet_lab.Lab, tmp: Path, row: Row, idle: float, trials: int, edit_count: int
) -> None:
    spec, journal = tmp / "fleet.yaml", tmp / "journal.db"
    watch = subprocess.Popen(
        [str(BIN / "reconcile"), "watch", str(spec), "--journal", str(journal),
         "--http", METRICS, "--max-seconds", "1800"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(tmp / "watch.log").open("w"),
    )  # fmt: skip
    kept = Kept(lab, lab.hosts[0].name, tmp / "control")  # one host's CPU, over one link
    try:
        wait(lambda: healthy(f"http://{METRICS}/metrics"), timeout=60)
        wait(lambda: probe_passes(METRICS) >= 2, timeout=120)
        pids = descendants(watch.pid)
        cpu, passes, started = cpu_seconds(pids), probe_passes(METRICS), time.monotonic()
        on_host = host_cpu(kept)
        time.sleep(idle)
        elapsed = time.monotonic() - started
        used, probes = cpu_seconds(pids) - cpu, probe_passes(METRICS) - passes
        row.figures["host cpu s/s"] = (host_cpu(kept) - on_host) / elapsed
        row.figures["probes/min"] = 60 * probes / elapsed
        row.figures["probe cpu/host ms"] = 1000 * used / max(probes, 1) / len(lab.hosts)
        row.figures["rss MB"] = rss_mb(descendants(watch.pid))
        for kind in ("probe", "full"):  # the loop's own time: a round, and a full pass
            seconds, count = pass_seconds(METRICS, kind)
            row.figures[f"{kind} pass s"] = seconds / max(count, 1)
        heals = heal_times(lab, trials, lambda: pass_finished(journal))
        row.lists["heal"] = heals
        row.lists["edit"] = edit_times(lab, spec, edit_count, lambda: pass_finished(journal))
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=120)
        try:  # the same host with nothing probing it: its own idle CPU, to subtract
            quiet, started = host_cpu(kept), time.monotonic()
            time.sleep(idle / 2)
            idle_rate = (host_cpu(kept) - quiet) / (time.monotonic() - started)
            busy_rate = row.figures.get("host cpu s/s", idle_rate)
            rounds_per_s = row.figures.get("probes/min", 0) / 60
            row.figures["host ms/probe"] = 1000 * (busy_rate - idle_rate) / max(rounds_per_s, 1e-9)
        finally:
            kept.close()


def main() -> int:
    args = options(__doc__, sizes="8,32,64", watch_sizes="", trials=5, edits=3, idle=30.0)
    sizes = [int(s) for s in str(args.sizes).split(",") if s]
    watch_sizes = [int(s) for s in str(args.watch_sizes).split(",") if s]
    setting = ReconcilerSettings().probe_interval.total_seconds()
    rows: list[Row] = []
    watched: list[Row] = []  # --watch-sizes: no peer
    try:
        for size, watch_only in [(s, False) for s in sizes] + [(s, True) for s in watch_sizes]:
            with tempfile.TemporaryDirectory() as tmp:
                row = Row(size)
                if watch_only:
                    lab = converge_once(size, Path(tmp), row)
                    watched.append(row)
                else:
                    lab = converges(size, Path(tmp), row)
                    rows.append(row)
                under_watch(lab, Path(tmp), row, args.idle, args.trials, args.edits)
                print(f"{size} hosts: {row.figures} {row.lists}", file=sys.stderr, flush=True)
    finally:
        fleet_lab.down(PREFIX)
    print(f"machine: {machine()}")
    print(f"probe interval {setting:g}s ({60 / setting:g} probe passes/min set)")
    head = (
        f"{'hosts':>5} {'dry-run vs pyinfra --dry':>26} {'first converge vs -y':>24} "
        f"{'no-op vs -y':>20} {'heal median/p95':>16} {'edit-to-live':>13} "
        f"{'probes/min':>10} {'cpu/host/probe':>15} {'RSS':>7}"
    )
    print(head)
    for row in rows:
        f = row.figures
        dry = f"{f['reconcile dry']:.2f}/{f['pyinfra dry']:.2f}s {f['reconcile dry'] / f['pyinfra dry']:.2f}x"
        first = f"{f['reconcile first']:.1f}/{f['pyinfra first']:.1f}s {f['reconcile first'] / f['pyinfra first']:.2f}x"
        noop = f"{f['reconcile no-op']:.1f}/{f['pyinfra no-op']:.1f}s {f['reconcile no-op'] / f['pyinfra no-op']:.2f}x"
        heal = f"{statistics.median(row.lists['heal']):.2f}/{p95(row.lists['heal']):.2f}s"
        edit = f"{statistics.median(row.lists['edit']):.2f}s"
        print(
            f"{row.hosts:>5} {dry:>26} {first:>24} {noop:>20} {heal:>16} {edit:>13} "
            f"{f['probes/min']:>10.1f} {f['probe cpu/host ms']:>12.1f}ms {f['rss MB']:>5.0f}MB"
        )
    for row in watched:
        f = row.figures
        heal = f"{statistics.median(row.lists['heal']):.2f}/{p95(row.lists['heal']):.2f}s"
        edit = f"{statistics.median(row.lists['edit']):.2f}s"
        first = f"{f['reconcile first']:.1f}s (no peer)"
        print(
            f"{row.hosts:>5} {'(watch only)':>26} {first:>24} {'-':>20} {heal:>16} {edit:>13} "
            f"{f['probes/min']:>10.1f} {f['probe cpu/host ms']:>12.1f}ms {f['rss MB']:>5.0f}MB"
        )
    print("dry-run, converges: reconcile/pyinfra seconds and their ratio; heal: a stopped")
    print("service until its HTTP check answers; cpu/host/probe: the controller's CPU per")
    print("probe pass divided by the host count")
    full_every = ReconcilerSettings().interval.total_seconds()
    print(
        f"\nwhere one controller ends, at the defaults (probe round {setting:g}s, full pass "
        f"every {full_every:g}s), from each row's per-host costs:"
    )
    print(
        f"{'hosts':>5} {'round':>8} {'full pass':>10} {'loop busy':>10} {'hosts at 100%':>14} "
        f"{'CPU ms/host/s':>14} {'hosts per core':>15} {'host ms/probe':>14}"
    )
    for row in rows + watched:
        f = row.figures
        busy = f["probe pass s"] / setting + f["full pass s"] / full_every  # of the loop's time
        cpu = f["probe cpu/host ms"] / setting  # the controller's CPU per host per second
        print(
            f"{row.hosts:>5} {f['probe pass s']:>7.2f}s {f['full pass s']:>9.2f}s "
            f"{100 * busy:>9.0f}% {row.hosts / busy:>14.0f} {cpu:>14.2f} {1000 / cpu:>15.0f} "
            f"{f.get('host ms/probe', float('nan')):>14.1f}"
        )
    print("loop busy: the share of its time the loop spends in probe rounds and full passes")
    print("(it must stay under 100% for the rounds to keep to the interval); hosts at 100%:")
    print("the host count at which it would not, growing linearly; hosts per core: the")
    print("controller's CPU (daemon and SSH worker) between passes, per host; host ms/probe:")
    print("one host's CPU (all its processes) per probe round, less its own idle CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
