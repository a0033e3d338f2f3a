"""A game-day drill switches over and back; a command renews a fenced primary's lease before its work."""

from __future__ import annotations

import json
import time
from pathlib import Path

from reconciler.flows.leases import leases_kept
from reconciler.store.failover_state import FailoverStore
from reconciler.store.journal import Journal
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import run_reconcile
from tests.integration.failover.conftest import active, journal_path, wait_for


def test_a_drill_game_day_switches_over_and_back_measured(pair: Path, lab: fleet_lab.Lab) -> None:
    journal = str(journal_path(pair))
    saved = run_reconcile("backup", "now", "agentdata", "--state", str(pair), "--journal", journal)
    assert saved.returncode == 0, saved.stdout + saved.stderr
    drilled = run_reconcile(
        "drill", str(pair), "--failover", "--output", "json", "--journal", journal
    )
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    steps = json.loads(drilled.stdout)
    assert [(s["kind"], s["subject"]) for s in steps] == [
        ("restart", "agent"),
        ("recovery", "agent"),
        ("restore", "agentdata (data age)"),
        ("restore", "agentdata"),
        ("channel", "controller -> h2"),
        ("channel", "h1 -> h2"),
        ("failover", "agent -> h2"),
        ("failover", "agent -> h1"),
    ], steps
    assert all(s["verdict"] == "pass" for s in steps), steps
    over, back = steps[-2:]
    assert 0 < over["measured_s"] <= over["objective_s"] and back["t_fault"] > over["t_healthy"]
    assert active(lab, "h1", "agent") and not active(lab, "h2", "agent")


def test_a_command_after_the_primary_fenced_itself_renews_its_lease_first(
    pair: Path, lab: fleet_lab.Lab
) -> None:
    """With no `reconcile watch`, h1 stops its agent fence_after (14 s) after the last
    renewal, and the unit refuses to start without a lease. A command's lease keeper
    renews before the command's work starts (CI saw a drill's restart lose that race),
    and the drill's restart then passes."""
    wait_for(lambda: not active(lab, "h1", "agent"), 60, "h1 fencing its agent")
    loaded = load_fleet(pair)
    assert loaded.written.failover is not None
    entered = time.time()
    with leases_kept(lambda: loaded, journal_path(pair)):
        journal = Journal(journal_path(pair))
        renewed = FailoverStore(journal, loaded.written.failover).last_renewal("h1")
        journal.close()
    assert renewed is not None and renewed >= entered
    drilled = run_reconcile(
        "drill", str(pair), "--output", "json", "--journal", str(journal_path(pair))
    )
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    restart = json.loads(drilled.stdout)[0]
    assert (restart["kind"], restart["verdict"]) == ("restart", "pass"), restart
    assert active(lab, "h1", "agent")
