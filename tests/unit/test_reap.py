"""backups.reap: a command's orphans are waited for before the command's status returns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_reaper_waits_for_what_the_command_left_behind(tmp_path: Path) -> None:
    marker = tmp_path / "orphan-finished"
    # The shell exits at once with 3, leaving a child that finishes 0.3 s later.
    command = ["sh", "-c", f"(sleep 0.3; touch {marker}) & echo started; exit 3"]
    done = subprocess.run(
        [sys.executable, "-m", "backups.reap", *command], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (3, "started\n")
    assert marker.exists()  # the orphan was waited for, not left to init


def test_an_orphan_that_lingers_is_killed() -> None:
    """`sleep 30` outlives its shell; the reaper kills it after LINGER_S instead."""
    command = ["sh", "-c", "sleep 30 & exit 0"]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, backups.reap as r; r.LINGER_S = 0.2; sys.exit(r.main(sys.argv[1:]))",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 0
