"""Timing a command for the benchmarks: wall-clock seconds, failing loudly on a bad exit."""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(
    command: list[str], env: dict[str, str] | None = None, allowed: tuple[int, ...] = (0,)
) -> float:
    """Run `command` from the repository root; its wall time, or SystemExit with its
    output when it exits with a code not `allowed`."""
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env, stdin=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in allowed:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def options(doc: str | None, **defaults: float | str) -> argparse.Namespace:
    """A benchmark's command line: one `--name` option per keyword, typed by its default
    (`size_mb=200` is `--size-mb N`, an int; `idle=30.0` a float)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    for name, default in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args()
