"""Backup checks, drills and copies as the journal records them: their event kinds, and
the newest of them for a policy (when the next one is due; what status shows)."""

from __future__ import annotations

from reconciler.events.bus import EventKind
from reconciler.store.journal import EventRecord, Journal
from state.layout import backup_service_id, copy_service_id

CHECK_KINDS: tuple[EventKind, ...] = ("backup_check_passed", "backup_check_failed")
DRILL_KINDS: tuple[EventKind, ...] = ("drill_passed", "drill_failed")
COPY_KINDS: tuple[EventKind, ...] = ("backup_copied", "backup_copy_failed")


def last_event(
    journal: Journal, kinds: tuple[EventKind, ...], policy: str, copy: str | None = None
) -> EventRecord | None:
    """The newest event of one of `kinds` about `policy` (or its copy `copy`), or None."""
    service = backup_service_id(policy) if copy is None else copy_service_id(policy, copy)
    found = [e for kind in kinds for e in journal.events(500, kind, service=service)]
    return max(found, key=lambda e: e.at, default=None)
