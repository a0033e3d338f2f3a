"""Benchmark: a first converge and a no-op converge, `reconcile --yes` against `pyinfra -y`.

Both run the same deploys (deploys/fleet.py through deploys/inventory.py for pyinfra)
on 4 fresh real hosts each; hosts are rebooted fresh (volatile overlay) between the
two tools. reconcile additionally observes, gates on health and verifies; pyinfra does
not. Prints the times and the ratios. Bounded: one first converge and 3 no-op rounds.

    .venv/bin/python -m bench.apply [--hosts 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.dry_run import write_spec
from bench.timing import timed
from tests.fleet import lab as fleet_lab

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def measure(
    names: list[str], spec: Path, command: list[str], env: dict[str, str] | None, rounds: int
) -> tuple[float, float]:
    lab = fleet_lab.up(names, prefix="bench")
    write_spec(lab, names, spec)
    first = timed(command, env)
    noop = statistics.median(timed(command, env) for _ in range(rounds))
    return first, noop


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = [f"b{i}" for i in range(1, args.hosts + 1)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "fleet.yaml"
            ours = measure(
                names,
                spec,
                [str(BIN / "reconcile"), "--yes", "--journal", f"{tmp}/journal.db", str(spec)],
                None,
                args.rounds,
            )
            env = {**os.environ, "FLEET_STATE": str(spec)}
            peer = measure(
                names,
                spec,
                [str(BIN / "pyinfra"), "-y", "deploys/inventory.py", "deploys/fleet.py"],
                env,
                args.rounds,
            )
    finally:
        fleet_lab.down("bench")
    print(f"{args.hosts} hosts   {'reconcile --yes':>16}  {'pyinfra -y':>11}  {'ratio':>6}")
    for label, a, b in (("first converge", ours[0], peer[0]), ("no-op converge", ours[1], peer[1])):
        print(f"{label:<15} {a:>15.2f}s {b:>11.2f}s  {a / b:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
