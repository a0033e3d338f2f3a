"""`reconcile --version`: ours, and the versions of the tools and libraries we drive."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata

TOOLS = {  # name: the command that prints its version first
    "restic": ["restic", "version"],
    "age": ["age", "--version"],
    "git": ["git", "--version"],
    "rclone": ["rclone", "version"],
}
LIBRARIES = ("pyinfra", "pydantic", "resticpy", "httpx", "watchfiles")


def version_lines() -> list[str]:
    """One line for us, then one per tool (`not found` when it is missing) and library."""
    lines = [f"fleet-reconciler {_distribution('fleet-reconciler')}"]
    lines += [f"  {name:<10} {tool_version(argv)}" for name, argv in TOOLS.items()]
    lines += [f"  {name:<10} {_distribution(name)}" for name in LIBRARIES]
    return lines


def tool_version(argv: list[str]) -> str:
    """The version a tool prints first (`not found`, `unusable: ...`, `unknown`)."""
    if shutil.which(argv[0]) is None:
        return "not found"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unusable: {exc}"
    first = (done.stdout or done.stderr).strip().splitlines()
    words = first[0].split() if first else []
    found = next((w.lstrip("v") for w in words if w.lstrip("v")[:1].isdigit()), None)
    return found or "unknown"


def _distribution(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
