"""When scheduled backup checks and drills are due, from the journal's own record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.backup_schedule import is_due, last_event_at
from reconciler.drill import rotating_subset
from reconciler.journal import Journal


def test_is_due() -> None:
    day = timedelta(days=1)
    assert is_due(None, day, 1000.0)
    assert not is_due(1000.0, day, 1000.0 + 86399)
    assert is_due(1000.0, day, 1000.0 + 86400)


def test_last_event_at_reads_checks_and_failed_checks_of_one_policy(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.record_event(
        10.0, "P3", "backup_check", "h1", "backup:db", "backup db: check 1/7 ok", {}
    )
    journal.record_event(
        20.0, "P1", "escalation", "h1", "backup:db", "backup db: repository check failed: x", {}
    )
    journal.record_event(
        30.0, "P3", "backup_check", "h1", "backup:other", "backup other: check 1/7 ok", {}
    )
    journal.record_event(40.0, "P3", "drill", "h1", "backup:db", "backup db: drill passed", {})
    assert last_event_at(journal, ("backup_check", "escalation"), "db", "check") == 20.0
    assert last_event_at(journal, ("drill", "escalation"), "db", "drill") == 40.0
    assert last_event_at(journal, ("drill", "escalation"), "nope", "drill") is None


def test_rotating_subset_reads_every_seventh_over_a_week() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    subsets = {rotating_subset(start + timedelta(days=d)) for d in range(7)}
    assert subsets == {f"{n}/7" for n in range(1, 8)}
