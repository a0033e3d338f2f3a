"""When scheduled backup checks and drills are due, from the journal's own record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.events.verification_events import CHECK_KINDS, DRILL_KINDS, last_event
from reconciler.flows.verifications import is_due
from reconciler.repositories.verify import rotating_subset
from reconciler.store.journal import Journal


def test_is_due() -> None:
    day = timedelta(days=1)
    assert is_due(None, day, 1000.0)
    assert not is_due(1000.0, day, 1000.0 + 86399)
    assert is_due(1000.0, day, 1000.0 + 86400)


def test_last_event_finds_checks_and_drills_of_one_policy_by_kind(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.record_event(10.0, "P3", "backup_check_passed", "h1", "backup:db", "check ok", {})
    journal.record_event(20.0, "P1", "backup_check_failed", "h1", "backup:db", "failed", {})
    journal.record_event(30.0, "P3", "backup_check_passed", "h1", "backup:other", "ok", {})
    journal.record_event(40.0, "P3", "drill_passed", "h1", "backup:db", "drill passed", {})
    journal.record_event(50.0, "P1", "escalation", "h1", "backup:db", "check drill words", {})
    check = last_event(journal, CHECK_KINDS, "db")
    assert check is not None and (check.at, check.kind) == (20.0, "backup_check_failed")
    drill = last_event(journal, DRILL_KINDS, "db")
    assert drill is not None and drill.at == 40.0
    assert last_event(journal, DRILL_KINDS, "nope") is None


def test_rotating_subset_reads_every_seventh_over_a_week() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    subsets = {rotating_subset(start + timedelta(days=d)) for d in range(7)}
    assert subsets == {f"{n}/7" for n in range(1, 8)}


def test_a_drill_that_cannot_list_says_so(tmp_path: Path) -> None:
    """A drill whose repository cannot be read fails naming why, not as an empty restore
    (`restored snapshot  (0 files)`)."""
    from reconciler.events.bus import Event, EventBus
    from reconciler.flows.verifications import drilled
    from reconciler.store.ledger import Ledger
    from tests.unit.helpers import load_text
    from tests.unit.test_spec import BASE
    from tests.unit.test_verifier import policy as unreadable_policy

    policy = unreadable_policy(tmp_path)
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    journal = Journal(tmp_path / "journal.db")
    result, line = drilled(load_text(BASE + policy), "agentdata", bus, Ledger(journal))
    assert not result.ok
    assert line.startswith("backup agentdata: drill FAILED: no snapshot restored: ")
    assert "FLEET_TEST_UNSET_RESTIC_PASSWORD" in line and "(0 files)" not in line
    assert events[-1].kind == "drill_failed" and events[-1].message == line
