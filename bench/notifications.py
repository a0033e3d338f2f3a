"""Benchmark notifications on 2 real hosts, with the Telegram stand-in running on h2.

- failure-to-first-notification (P0): the primary h1's link is cut, until the Telegram
  stand-in has the "primary down" page (its own receive time; the hosts share this
  machine's clock). Goal: under `probe_interval` + 2 s. Detection needs a failed SSH
  lease renewal (3 s connect timeout) and the backup's second opinion, so this is
  bounded below by that timeout: the figure shows by how much the goal is missed or met.
- the loop's pass time with a dead channel against a live one: a service that cannot
  start is retried every full pass (interval 2 s) and each failure is re-sent (P3
  `repeat_interval` 1 s) to Telegram, live (answers at once) or dead (every request
  hangs past the 10 s client timeout). Goal: ratio 1.0, since sending is off the loop's
  thread.

Bounded: --trials outages (default 3) and --passes passes per mode (default 8).

    .venv/bin/python -m bench.notifications
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.timing import options
from bench.watch import CLI, ROOT, wait
from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.integration.test_notifications import TG_TOKEN, spec_text

FAILOVER = "failover: {primary: h1, backup: h2, services: [agent], grace: 60s, fence_after: 50s}\n"
ROUTES_P0 = "  routes:\n    P0: [tg]\n"
ROUTES_P3 = "  routes:\n    P3: [tg]\n  repeat_interval: {P3: 1s}\n"
TEST_LOOP = "reconciler:\n  interval: 30s\n  probe_interval: 1s\n  backoff_initial: 1s\n"
TEST_LOOP += "  escalate_after_attempts: 2\n"
LOOP = "reconciler:\n  interval: 2s\n  probe_interval: 60s\n  backoff_initial: 1s\n"
LOOP += "  backoff_max: 1s\n  escalate_after_attempts: 1000\n"


def with_routes(text: str, routes: str) -> str:
    start = text.index("  routes:\n")
    end = text.index("reconciler:", start)
    return text[:start] + routes + text[end:]


def messages(lab: fleet_lab.Lab) -> list[dict[str, Any]]:
    url = f"http://{lab.host('h2').address}:8081/test/messages"
    found: list[dict[str, Any]] = httpx.get(url, timeout=5).json()
    return found


def set_mode(lab: fleet_lab.Lab, mode: str) -> None:
    url = f"http://{lab.host('h2').address}:8081/test/mode"
    httpx.post(url, json={"mode": mode}, timeout=5).raise_for_status()


def converge(spec: Path, journal: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [*CLI, str(spec), "--yes", "--journal", str(journal)],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env=env,
    )


def watch(spec: Path, journal: Path, env: dict[str, str], *bounds: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "watch", str(spec), "--journal", str(journal), *bounds],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def first_page(
    lab: fleet_lab.Lab, spec: Path, journal: Path, env: dict[str, str], trials: int
) -> list[float]:
    spec.write_text(with_routes(spec_text(lab, None), ROUTES_P0) + FAILOVER)
    converge(spec, journal, env)
    proc = watch(spec, journal, env, "--max-seconds", "900")
    latencies: list[float] = []
    try:
        time.sleep(5)
        for _ in range(trials):
            seen = len(messages(lab))
            cut = time.time()
            fleet_lab.cut_link(lab, "h1")

            def paged(seen: int = seen) -> bool:
                return len(messages(lab)) > seen

            try:
                wait(paged, timeout=45, step=0.1)
                page = messages(lab)[seen]
                assert "P0 opened" in page["text"] and "unreachable" in page["text"], page
                latencies.append(page["date"] - cut)
            finally:
                fleet_lab.restore_link(lab, "h1")
            wait(lambda: "P0 resolved" in messages(lab)[-1]["text"], timeout=60, step=0.2)
            time.sleep(5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return latencies


def pass_times(
    lab: fleet_lab.Lab, spec: Path, journal: Path, env: dict[str, str], passes: int
) -> tuple[float, float]:
    """Median run duration and median start-to-start cadence of `passes` watch passes."""
    text = with_routes(spec_text(lab, "/bin/false"), ROUTES_P3)
    assert TEST_LOOP in text, "the integration spec's reconciler settings changed"
    spec.write_text(text.replace(TEST_LOOP, LOOP))
    proc = watch(spec, journal, env, "--max-passes", str(passes), "--max-seconds", "300")
    try:
        proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Journal(journal)
    try:
        runs = sorted(store.runs(passes + 5), key=lambda r: r.started)
    finally:
        store.close()
    durations = [r.ended - r.started for r in runs if r.ended is not None]
    starts = [r.started for r in runs]
    cadence = [b - a for a, b in itertools.pairwise(starts)]
    return statistics.median(durations), statistics.median(cadence)


def main() -> int:
    args = options(__doc__, trials=3, passes=8)
    env = {**os.environ, "TEST_TG_TOKEN": TG_TOKEN, "TEST_GITEA_TOKEN": "bench-gitea-token"}
    lab = fleet_lab.up(["h1", "h2"], prefix="bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "fleet.yaml"
            for host in ("h1", "h2"):
                fleet_lab.ssh(lab, host, "rm -rf /var/lib/fleet-reconciler/fence")
            pages = first_page(lab, spec, Path(tmp) / "pages.db", env, args.trials)
            set_mode(lab, "ok")
            live = pass_times(lab, spec, Path(tmp) / "live.db", env, args.passes)
            sent_live = len(messages(lab))
            set_mode(lab, "slow")
            dead = pass_times(lab, spec, Path(tmp) / "dead.db", env, args.passes)
            set_mode(lab, "ok")
    finally:
        fleet_lab.down("bench")
    print(
        f"failure-to-first-notification (P0 primary down, link cut, n={len(pages)}): median "
        f"{statistics.median(pages):.2f}s, max {max(pages):.2f}s "
        f"(goal < probe_interval 1s + 2s = 3s)"
    )
    print(
        f"pass time with a live channel ({sent_live} messages delivered): run median "
        f"{live[0]:.2f}s, start-to-start {live[1]:.2f}s; with a dead channel (every send "
        f"hangs 10s): run {dead[0]:.2f}s, start-to-start {dead[1]:.2f}s; "
        f"ratio dead/live {dead[1] / live[1]:.2f} (goal 1.0)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
