"""The backups' scheduled verifications run beside the loop: their events reach the
loop's bus (and so its journal) on the loop's thread, and one that is recorded is not
run again until it is due."""

from __future__ import annotations

from pathlib import Path

from reconciler.daemon.verifier import Verifier
from reconciler.events.bus import Event, EventBus
from reconciler.events.sinks import journal_sink
from reconciler.store.journal import Journal
from tests.spec_text import backup_policy
from tests.unit.helpers import load_text
from tests.unit.test_spec import BASE


def policy(tmp_path: Path) -> str:
    """A policy whose repository cannot be read: it is not there, nor its password."""
    return "backups:\n" + backup_policy(
        "agentdata",
        "kimi",
        str(tmp_path / "nowhere"),
        "env:FLEET_TEST_UNSET_RESTIC_PASSWORD",
        paths="[/srv/data]",
        retention="{keep_last: 3}",
    )


def test_verifications_run_in_a_worker_and_their_events_reach_the_loops_journal(
    tmp_path: Path,
) -> None:
    loaded = load_text(BASE + policy(tmp_path))
    journal = Journal(tmp_path / "journal.db")
    bus, heard, lines = EventBus(), list[Event](), list[str]()
    bus.subscribe(journal_sink(journal))
    bus.subscribe(heard.append)
    verifier = Verifier(journal.path)
    assert verifier.start_due(loaded, bus, lines.append)
    assert not heard  # nothing is emitted from the worker's thread
    assert verifier.wait(120)
    verifier.drain(bus, lines.append)
    assert [e.kind for e in heard] == ["backup_check_failed", "drill_failed"]
    assert "FLEET_TEST_UNSET_RESTIC_PASSWORD" in heard[0].message
    assert lines == [
        "backup agentdata: check " + heard[0].context["subset"] + " FAILED",
        heard[1].message,
    ]
    assert [e.kind for e in journal.events(10)] == ["drill_failed", "backup_check_failed"]

    assert verifier.start_due(loaded, bus, lines.append)  # recorded: nothing is due now
    assert verifier.wait(120)
    verifier.drain(bus, lines.append)
    assert len(heard) == 2 and len(lines) == 2
