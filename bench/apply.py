"""Benchmark: a first converge and a no-op converge, `reconcile --yes` against `pyinfra -y`.

Both run the same deploys (deploys/fleet.py through deploys/inventory.py for pyinfra)
on 4 fresh real hosts each; hosts are rebooted fresh (volatile overlay) before every
first converge, the two tools in turn. reconcile additionally observes, gates on health
and verifies; pyinfra does not. Prints the medians and the ratios. Bounded: --firsts
first converges per tool (default 3), then --rounds no-op rounds (default 3).

    .venv/bin/python -m bench.apply [--hosts 4]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.dry_run import write_spec
from bench.timing import options, timed
from tests.fleet import lab as fleet_lab

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def measure(
    names: list[str], spec: Path, command: list[str], env: dict[str, str] | None, rounds: int
) -> tuple[float, list[float]]:
    """A first converge on fresh hosts, then `rounds` no-op converges."""
    lab = fleet_lab.up(names, prefix="bench")
    write_spec(lab, names, spec)
    first = timed(command, env)
    return first, [timed(command, env) for _ in range(rounds)]


def main() -> int:
    args = options(__doc__, hosts=4, rounds=3, firsts=3)
    names = [f"b{i}" for i in range(1, args.hosts + 1)]
    firsts: dict[str, list[float]] = {"reconcile": [], "pyinfra": []}
    noops: dict[str, list[float]] = {"reconcile": [], "pyinfra": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "fleet.yaml"
            tools = {
                "reconcile": (
                    [str(BIN / "reconcile"), "--yes", "--journal", f"{tmp}/journal.db", str(spec)],
                    None,
                ),
                "pyinfra": (
                    [str(BIN / "pyinfra"), "-y", "deploys/inventory.py", "deploys/fleet.py"],
                    {**os.environ, "FLEET_STATE": str(spec)},
                ),
            }
            for round_ in range(args.firsts):
                for tool, (command, env) in tools.items():
                    Path(f"{tmp}/journal.db").unlink(missing_ok=True)
                    rounds = args.rounds if round_ == args.firsts - 1 else 0
                    first, noop = measure(names, spec, command, env, rounds)
                    firsts[tool].append(first)
                    noops[tool] += noop
    finally:
        fleet_lab.down("bench")
    print(f"{args.hosts} hosts       {'reconcile --yes':>16}  {'pyinfra -y':>11}  {'ratio':>6}")
    for label, found in ((f"first converge (n={args.firsts})", firsts), ("no-op converge", noops)):
        ours, peer = statistics.median(found["reconcile"]), statistics.median(found["pyinfra"])
        print(f"{label:<22} {ours:>12.2f}s {peer:>11.2f}s  {ours / peer:>6.2f}")
    print("  each first converge, reconcile:", [f"{t:.2f}" for t in firsts["reconcile"]])
    print("  each first converge, pyinfra:  ", [f"{t:.2f}" for t in firsts["pyinfra"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
