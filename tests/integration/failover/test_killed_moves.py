"""A controller SIGKILLed inside a move, then run again, ends in one placement."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import run_reconcile, start_reconcile
from tests.integration.failover.conftest import active, finish, journal_path, placement, watch


@pytest.mark.parametrize(
    "point",
    [
        "switchover:stopped",
        "switchover:backed-up",
        "switchover:revoked",
        "switchover:restored",
        "switchover:committed",
    ],
)
def test_a_move_killed_at_any_step_ends_in_one_placement(
    lab: fleet_lab.Lab, pair: Path, point: str
) -> None:
    """SIGKILL the controller at `point` of a planned switchover, then run it again."""
    spec = pair
    journal = str(journal_path(spec))
    killed = run_reconcile(
        "failover",
        "--to",
        "h2",
        "--state",
        str(spec),
        "--journal",
        journal,
        "--yes",
        env={**os.environ, "FLEET_RECONCILER_FAILPOINT": point},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    done = run_reconcile("--yes", str(spec), "--journal", journal)
    assert done.returncode == 0, done.stdout + done.stderr
    where = str(placement(spec)["active"] or "h1")
    other = "h1" if where == "h2" else "h2"
    assert active(lab, where, "agent") and not active(lab, other, "agent"), (point, where)
    expected = "h2" if point == "switchover:committed" else "h1"
    assert where == expected


@pytest.mark.parametrize("point", ["failover:restored", "failover:committed"])
def test_a_promotion_killed_midway_ends_on_the_backup(
    lab: fleet_lab.Lab, pair: Path, point: str
) -> None:
    """SIGKILL `reconcile watch` inside a promotion, then start it again: before the
    placement is recorded the move is rolled back and, the primary still gone, promoted
    again; after, it is finished. Either way the agent ends on h2 alone."""
    spec = pair
    crashing = start_reconcile(
        "watch",
        str(spec),
        "--journal",
        str(journal_path(spec)),
        "--max-seconds",
        "120",
        env={**os.environ, "FLEET_RECONCILER_FAILPOINT": point},
    )
    time.sleep(4)
    fleet_lab.cut_link(lab, "h1")
    assert crashing.wait(timeout=100) == -signal.SIGKILL
    output = finish(watch(spec, 40))
    fleet_lab.restore_link(lab, "h1")
    assert active(lab, "h2", "agent") and not active(lab, "h1", "agent"), output
    assert placement(spec)["active"] == "h2"
    assert Journal(journal_path(spec)).events(kind="failover"), output
