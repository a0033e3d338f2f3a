"""Where a state file came from: its git commit and whether there are uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_provenance(state_file: Path, whole_tree: bool = True) -> tuple[str | None, bool | None]:
    """(HEAD commit, dirty) of the repository holding `state_file`, or (None, None).

    `dirty` covers the whole working tree (what the journal records), or with
    `whole_tree=False` just the state file (what `require_committed` checks).
    """
    directory = str(state_file.resolve().parent)

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    scope = [] if whole_tree else ["--", str(state_file.resolve())]
    return commit, bool(git("status", "--porcelain", *scope))
