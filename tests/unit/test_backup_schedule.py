"""When scheduled backup checks and drills are due, from the journal's own record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.backup.verify import rotating_subset
from reconciler.daemon.verifications import CHECK_KINDS, DRILL_KINDS, is_due, last_event
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
