"""Where a state file came from: its git commit and whether it has uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_provenance(state_file: Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, file is dirty) of the repository holding `state_file`, or (None, None)."""
    directory = str(state_file.resolve().parent)

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--", str(state_file.resolve()))
    return commit, bool(status)
