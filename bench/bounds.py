"""Benchmark: what the bounds on host answers cost (issue 24), against the version before.

A total deadline and a body cap on every HTTP answer (one connection per request), the
bounded reads of unit files and contents, and the escaping of host text: their cost
on a probe pass and on `reconcile --dry-run`, against the same code before them (the
commit `--before`, checked out beside this one with `git worktree`), on the same 2
real hosts, runs alternating. Prints medians and the ratio now/before; the target is
1.05 or less.

- **probe pass**: `observe(..., health_only=True)` over a warm SSH worker, in-process,
  as the watch loop runs it (the HTTP check and the model listing of Ollama on h2, the
  unit and file checks of the agent on h1), --passes times per round.
- **--dry-run**: the whole command, --rounds times each.

    .venv/bin/python -m bench.bounds [--rounds 7] [--passes 30] [--before 03e8211]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.timing import ROOT, options, timed
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec

PREFIX = "bnd"
CLI = [sys.executable, "-m", "reconciler.cli"]
PROBE_PASSES = """
import json, sys, time
import httpx
from reconciler.hosts.observe import ObserveSettings, observe
from reconciler.hosts.client import WarmWorker
from state.load import load_fleet
try:
    from reconciler.untrusted.http import bounded_client
    client = bounded_client()
except ImportError:  # the version before the bounds
    client = httpx.Client(trust_env=False)
loaded, worker = load_fleet(sys.argv[1]), WarmWorker()
settings = ObserveSettings(health_only=True)
for _ in range(3):
    observe(loaded, client, settings, worker)
times = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    state = observe(loaded, client, settings, worker)
    times.append(time.perf_counter() - started)
    assert all(r.healthy for results in state.health.values() for r in results), state.health
worker.close()
print(json.dumps(times))
"""


def probe_pass_median(tree: Path, spec: Path, passes: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PROBE_PASSES, str(spec), str(passes)],
        capture_output=True,
        text=True,
        cwd=tree,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"probe passes in {tree} failed:\n{done.stderr[-2000:]}")
    return float(statistics.median(json.loads(done.stdout)))


def dry_run(tree: Path, spec: Path, journal: Path) -> float:
    return timed_in(tree, [*CLI, "--dry-run", str(spec), "--journal", str(journal)])


def timed_in(tree: Path, command: list[str]) -> float:
    if tree == ROOT:
        return timed(command)
    # bench.timing runs from this checkout; the version before runs from its own tree
    wrapper = [sys.executable, "-c", "import os, sys; os.chdir(sys.argv[1]); "
               "os.execv(sys.argv[2], sys.argv[2:])", str(tree), *command]  # fmt: skip
    return timed(wrapper)


def main() -> None:
    args = options(__doc__, rounds=7, passes=30, before="03e8211")
    lab = fleet_lab.up(["h1", "h2"], prefix=PREFIX)
    with tempfile.TemporaryDirectory(prefix="bench-bounds-") as scratch:
        base = Path(scratch)
        before = base / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before), args.before],
            check=True,
        )
        try:
            spec, journal = base / "fleet.yaml", base / "journal.db"
            spec.write_text(lab_spec(lab))
            timed([*CLI, "--yes", str(spec), "--journal", str(journal)])
            trees = {"now": ROOT, "before": before}
            probe: dict[str, list[float]] = {name: [] for name in trees}
            plan: dict[str, list[float]] = {name: [] for name in trees}
            for i in range(args.rounds):
                order = list(trees) if i % 2 == 0 else list(reversed(trees))
                for name in order:
                    probe[name].append(probe_pass_median(trees[name], spec, args.passes))
                    plan[name].append(dry_run(trees[name], spec, journal))
            report("probe pass", probe, 1000, "ms")
            report("--dry-run", plan, 1, "s")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                check=False,
            )
            fleet_lab.down(PREFIX)


def report(what: str, runs: dict[str, list[float]], scale: float, unit: str) -> None:
    now, before = statistics.median(runs["now"]), statistics.median(runs["before"])
    print(
        f"{what:<11} now {now * scale:8.2f} {unit}   before {before * scale:8.2f} {unit}   "
        f"ratio now/before {now / before:.3f} (target <= 1.05; {len(runs['now'])} rounds)"
    )


if __name__ == "__main__":
    main()
