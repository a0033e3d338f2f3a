"""What does not fail over: partial partitions, flapping, and a backup older than the RPO (until accepted)."""

from __future__ import annotations

import time
from pathlib import Path

from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import failover_spec, run_reconcile, watch_passed
from tests.integration.failover.conftest import (
    active,
    finish,
    journal_path,
    placement,
    wait_for,
    watch,
    watched_until,
)


def test_partial_partitions_and_flapping_move_nothing(lab: fleet_lab.Lab, pair: Path) -> None:
    spec = pair
    # The controller loses h1, but h2 still reaches it: no failover, and the plan says why.
    fleet_lab.drop_route(lab, "h1", lab.gateway)
    output = finish(watch(spec, 34))
    fleet_lab.restore_route(lab, "h1", lab.gateway)
    assert "but h2 can: no failover" in output, output
    assert not active(lab, "h2", "agent")

    # The controller loses h2 as well as h1: it may be the one cut off; nothing moves.
    fleet_lab.drop_route(lab, "h2", lab.gateway)
    fleet_lab.cut_link(lab, "h1")
    output = finish(watch(spec, 34))
    fleet_lab.restore_link(lab, "h1")
    fleet_lab.restore_route(lab, "h2", lab.gateway)
    assert "and so is the backup h2" in output, output
    assert not active(lab, "h2", "agent")

    # Flapping: down 10 s in every 30 s, with a 20 s grace, never fails over.
    loop = watch(spec, 75)
    for _ in range(2):
        time.sleep(20)
        fleet_lab.cut_link(lab, "h1")
        time.sleep(10)
        fleet_lab.restore_link(lab, "h1")
    output = finish(loop)
    assert not active(lab, "h2", "agent"), output
    assert placement(spec)["active"] is None
    assert not Journal(journal_path(spec)).events(kind="failover")


def test_backup_older_than_the_rpo_holds_the_failover_until_accepted(
    lab: fleet_lab.Lab, pair: Path
) -> None:
    spec = pair
    spec.write_text(failover_spec(lab, rpo="15s", interval="10m"))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal_path(spec)))
    assert done.returncode == 0, done.stdout + done.stderr
    launched = time.time()
    loop = watch(spec, 100)
    # Its first full pass may take a backup (the converge's snapshot is past the RPO on
    # a loaded machine); from then on, nothing does for 10 minutes.
    wait_for(lambda: watch_passed(journal_path(spec), spec, launched), 60, "a first pass")
    time.sleep(20)  # the newest snapshot is now older than the 15 s RPO
    fleet_lab.cut_link(lab, "h1")
    journal = Journal(journal_path(spec))
    output = watched_until(
        loop, lambda: bool(journal.events(kind="failover_held")), 50, "a held failover"
    )
    held = journal.events(kind="failover_held")[0]
    assert held.severity == "P0" and "OVER objective" in held.message, output
    assert not active(lab, "h2", "agent")
    done = run_reconcile(
        "failover",
        "--accept-data-loss",
        "--state",
        str(spec),
        "--journal",
        str(journal_path(spec)),
        "--yes",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert active(lab, "h2", "agent")
    fleet_lab.restore_link(lab, "h1")
