"""Benchmark the git source: push-to-live through Gitea's webhook and by polling, and
the cost of a fetch that finds nothing new against a probe pass.

On 2 real hosts of the lab, h2 serving the repository (the Gitea stand-in: git's own
`git http-backend` and a post-receive hook that sends Gitea's signed push webhook):
- **push-to-live, webhook**: a commit that edits a config file, from `git push` until
  the new file is on h1 (polled over a kept SSH connection every 20 ms); the source's
  interval is 10 minutes, so only the webhook brings it.
- **push-to-live, polling**: the same with no webhook and `interval: 1m`, Flux's default
  (`spec.interval` of a GitRepository), each push at a random moment of the interval:
  the peer's figure, measured with our fetch.
- **review latency**: a pull request opened (Gitea sends `pull_request` opened) until
  its head commit has the status `fleet-reconciler/plan`: the author's check, the
  fetch of its head, the plan with the authority of the commit in force, the comment.
- **a fetch that finds nothing new** (`fetch_state`: fetch over HTTP, resolve, check
  that the tip does not move backward from the commit in force, read the state from
  the commit already exported): wall time and CPU (ours and git's), against a probe
  pass of the same `watch` (its wall time from /metrics).

Bounded: --pushes webhook pushes (default 5), --polls polled pushes (default 3, each
up to a minute), --reviews pull requests (default 5), --fetches no-change fetches
(default 20), --idle seconds of probe passes (default 20).

    .venv/bin/python -m bench.forge
"""

from __future__ import annotations

import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.timing import options
from bench.watch import Kept, machine, p95, wait
from reconciler.forge.source import fetch_state, put_in_force
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.test_forge import REVIEWS, Forge, git

PREFIX = "bforge"
PLAN = "fleet-reconciler/plan"


class ReviewedForge(Forge):
    """The lab's forge with `source.reviews` on in every commit (a commit keeps the
    bootstrap's `source:`)."""

    def spec(self, mode: str, verify: str = REVIEWS) -> str:
        return super().spec(mode, verify)


def push_to_live(
    forge: Forge, kept: Kept, label: str, count: int, phase: float = 0.0
) -> list[float]:
    """`count` pushes, each editing the agent's config, each after a random wait of up
    to `phase` seconds (a push lands anywhere in a poll's interval); seconds from the
    push until the new file is on h1."""
    latencies = []
    for i in range(count):
        time.sleep(random.uniform(0, phase))
        mode = f"{label}{i}"
        forge.commit(mode, forge.spec(mode))
        started = time.perf_counter()
        forge.push()
        wanted = f"grep -qx -- 'mode = {mode}' /etc/agent/agent.conf"

        def live(wanted: str = wanted) -> bool:
            return kept.run(wanted).returncode == 0

        wait(live, timeout=180)
        latencies.append(time.perf_counter() - started)
        time.sleep(1)
    return latencies


def probe_seconds(address: str) -> tuple[float, float]:
    """(probe passes, their total seconds) from `watch --http ADDRESS`'s /metrics."""
    text = httpx.get(f"http://{address}/metrics", timeout=5).text
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("kind") != "probe":
                continue
            if sample.name == "fleet_reconciler_reconcile_time_seconds_count":
                count = sample.value
            elif sample.name == "fleet_reconciler_reconcile_time_seconds_sum":
                total = sample.value
    return count, total


def review_latency(forge: Forge, count: int) -> list[float]:
    """`count` pull requests, each editing the agent's config on a branch of its own:
    seconds from opening it until its head has the status fleet-reconciler/plan."""
    latencies = []
    for i in range(count):
        git(forge.work, "checkout", "-q", "-b", f"review{i}", "main")
        head = forge.commit(f"review {i}", forge.spec(f"review{i}"))
        git(forge.work, "push", "-q", forge.url, f"review{i}")
        started = time.perf_counter()
        opened = forge.api("POST", "/pulls", json={"head": f"review{i}", "base": "main"})
        assert opened.status_code == 201, opened.text

        def planned(head: str = head) -> bool:
            return bool(forge.statuses(head, PLAN))

        wait(planned, timeout=120, step=0.05)
        latencies.append(time.perf_counter() - started)
        git(forge.work, "checkout", "-q", "main")
    return latencies


def no_change_fetches(forge: Forge, count: int) -> tuple[list[float], float]:
    """`fetch_state` `count` times with nothing new (after a first one, put in force as
    `watch` does): wall times, and the CPU seconds of each (this process and the git
    processes it ran)."""
    source = load_fleet(forge.bootstrap).fleet.source
    assert source is not None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(forge.env)
        put_in_force(source, Path(tmp), fetch_state(source, Path(tmp)).commit)
        cpu = _cpu()
        walls = []
        for _ in range(count):
            started = time.perf_counter()
            fetch_state(source, Path(tmp))
            walls.append(time.perf_counter() - started)
        return walls, (_cpu() - cpu) / count


def _cpu() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    args = options(__doc__, pushes=5, polls=3, reviews=5, fetches=20, idle=20.0)
    lab = fleet_lab.up(["h1", "h2"], prefix=PREFIX)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            forge = ReviewedForge(lab, Path(tmp))
            forge.serve()
            forge.first_commit()
            forge.push()
            kept = Kept(lab, "h1", Path(tmp) / "h1.ctl")
            try:
                forge.start_watch()
                wait(lambda: forge.conf() == "mode = first", timeout=180)
                hooked = push_to_live(forge, kept, "hook", args.pushes)
                reviewed = review_latency(forge, args.reviews)
                time.sleep(args.idle)  # probe passes, with nothing to do
                probes, probe_total = probe_seconds(forge.hook)
                forge.stop()
                forge.interval = "1m"  # Flux's default, and no webhook
                forge.commit("poll", forge.spec("poll"))
                forge.push()
                forge.start_watch(http=False)
                wait(lambda: forge.conf() == "mode = poll", timeout=180)
                polled = push_to_live(forge, kept, "poll", args.polls, phase=60.0)
                forge.stop()
                fetches, fetch_cpu = no_change_fetches(forge, args.fetches)
            finally:
                forge.stop()
                kept.close()
    finally:
        fleet_lab.down(PREFIX)
    hook, poll = statistics.median(hooked), statistics.median(polled)
    print(f"machine: {machine()}")
    print("push-to-live: git push of a config edit until the file is on the host")
    print(
        f"  webhook (n={len(hooked)}):        median {hook:.2f}s, p95 {p95(hooked):.2f}s, "
        f"max {max(hooked):.2f}s  (goal <= 2s)"
    )
    print(
        f"  polling 1m (n={len(polled)}, Flux's default interval): median {poll:.2f}s, "
        f"max {max(polled):.2f}s"
    )
    print(f"  ratio webhook / polling: {hook / poll:.3f}")
    review = statistics.median(reviewed)
    print(f"review latency: pull request opened until its plan status (n={len(reviewed)})")
    print(
        f"  median {review:.2f}s, p95 {p95(reviewed):.2f}s, max {max(reviewed):.2f}s "
        "(author checked, head fetched, planned with the base's authority, posted)"
    )
    probe = probe_total / probes if probes else float("nan")
    fetch = statistics.median(fetches)
    print(f"a fetch that finds nothing new (n={len(fetches)}) against a probe pass")
    print(
        f"  fetch_state: median {1000 * fetch:.0f}ms wall, p95 {1000 * p95(fetches):.0f}ms, "
        f"{1000 * fetch_cpu:.0f}ms CPU (ours and git's)"
    )
    print(f"  probe pass of the same watch (n={probes:g}): mean {1000 * probe:.0f}ms wall")
    print(f"  ratio fetch / probe pass: {fetch / probe:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
