"""Benchmark the dashboard.

- page server time: the real Starlette app over a journal holding 50 hosts' worth of
  state (150 services, 200 incidents, 500 runs): `/` and `/metrics`, median and p95 of
  --requests requests (default 50); and `/` over the demo fleet with a week of history
  (its two backup age charts and the heal chart, as in the README's screenshot);
- the loop's pass time with the dashboard on against off: `WatchLoop` on 2 lab hosts,
  --passes full passes each (default 15, interval 1 s), the pass durations from the
  loop's own hook; "on" serves the dashboard and a client polls `/` and `/metrics`
  every 0.5 s the whole time (goal: ratio <= 1.05).

    .venv/bin/python -m bench.dashboard
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from bench.timing import ROOT, options
from bench.watch import p95
from reconciler.daemon.loop import WatchLoop
from reconciler.daemon.spec_source import SpecSource
from reconciler.events.bus import Event, EventBus
from reconciler.flows.incident_desk import IncidentDesk
from reconciler.store.incidents import LocalIncidents
from reconciler.store.journal import Journal
from reconciler.web.app import make_app, serve_in_background
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.fleet.dashboard_shot import seed
from tests.fleet.ports import free_port
from tests.integration.conftest import lab_spec


def big_journal(path: Path, state: Path) -> None:
    journal = Journal(path)
    now = time.time()
    services = {
        f"svc{h}-{i}": {"host": f"host{h}", "healthy": (h + i) % 7 != 0, "detail": "", "seen": now}
        for h in range(50)
        for i in range(3)
    }
    journal.save_loop_state(str(state), {"last_pass": now, "services": services, "pending": []})
    desk = IncidentDesk(LocalIncidents(journal), lambda: None)
    for n in range(200):
        desk(Event("P2", "heal_failed", f"incident {n}", f"host{n % 50}", f"svc{n}", at=now - n))
    for _ in range(500):
        run = journal.start_run(str(state), "sha", None, None, "watch", {})
        journal.finish_run(run, "converged")
    journal.close()


def server_times(tmp: Path, requests: int) -> dict[str, list[float]]:
    state = tmp / "big.yaml"
    big_journal(tmp / "big.db", state)
    client = TestClient(make_app(tmp / "big.db", state, lambda: None, CollectorRegistry()))
    times: dict[str, list[float]] = {"/": [], "/metrics": []}
    for path in times:
        times[path] = _timed_gets(client, path, requests)
    # The demo fleet with a week of history: two backup age charts (169 and 8 snapshots)
    # and the heal chart, as in the README's screenshot.
    demo = ROOT / "state" / "demo.yaml"
    seed(tmp / "week.db", demo, time.time())
    loaded = load_fleet(demo)
    week = TestClient(make_app(tmp / "week.db", demo, lambda: loaded, CollectorRegistry()))
    times[WEEK] = _timed_gets(week, "/", requests)
    return times


WEEK = "/ (demo fleet, a week of history, 3 charts)"


def _timed_gets(client: TestClient, path: str, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        times.append(time.perf_counter() - started)
    return times


def pass_times(spec: Path, journal_path: Path, passes: int, dashboard: bool) -> list[float]:
    journal = Journal(journal_path)
    bus = EventBus()
    source = SpecSource(spec, bus, journal)
    assert source.reload()
    durations: list[float] = []

    def measure(kind: str, seconds: float, _result: str) -> None:
        if kind == "full":
            durations.append(seconds)

    stop = threading.Event()
    with httpx.Client(trust_env=False) as client:
        loop = WatchLoop(source, journal, client, bus, lambda _l: None, lambda *_a: None)
        loop.measure = measure
        server = None
        if dashboard:
            address = f"127.0.0.1:{free_port()}"
            registry = CollectorRegistry()
            app = make_app(journal_path, spec, lambda: source.loaded, registry)
            server = serve_in_background(app, address)

            def poll() -> None:
                with httpx.Client(trust_env=False) as viewer:
                    while not stop.wait(0.5):
                        for path in ("/", "/metrics"):
                            with contextlib.suppress(httpx.HTTPError):
                                viewer.get(f"http://{address}{path}", timeout=5)

            threading.Thread(target=poll, daemon=True).start()
        loop.run(max_passes=passes)
        stop.set()
        if server is not None:
            server.should_exit = True
    journal.close()
    return durations[1:]  # the first pass converges a fresh journal's view


def main() -> int:
    args = options(__doc__, requests=50, passes=15)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        served = server_times(tmp, args.requests)
        lab = fleet_lab.up(["h1", "h2"], prefix="bench")
        try:
            spec = tmp / "fleet.yaml"
            spec.write_text(lab_spec(lab) + "reconciler: {interval: 1s, probe_interval: 60s}\n")
            pass_times(spec, tmp / "warm.db", 2, dashboard=False)  # converge once
            off = pass_times(spec, tmp / "off.db", args.passes, dashboard=False)
            on = pass_times(spec, tmp / "on.db", args.passes, dashboard=True)
        finally:
            fleet_lab.down("bench")
    for path, times in served.items():
        what = "" if path == WEEK else " with 50 hosts (150 services, 200 incidents, 500 runs)"
        print(
            f"server time of {path}{what}, "
            f"n={len(times)}: median {statistics.median(times) * 1000:.1f} ms, "
            f"p95 {p95(times) * 1000:.1f} ms"
        )
    ratio = statistics.median(on) / statistics.median(off)
    print(
        f"full pass on 2 hosts (n={len(off)} each): dashboard off median "
        f"{statistics.median(off):.3f}s, on (polled every 0.5 s) {statistics.median(on):.3f}s, "
        f"ratio {ratio:.2f} (goal <= 1.05)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
