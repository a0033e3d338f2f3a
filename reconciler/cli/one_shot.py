"""What a one-shot command (apply, drill, failover) does with events: journal them, log
them, open incidents, and send what it queued before it ends."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli.terminal import report
from reconciler.coordination.etcd_incidents import incidents_for
from reconciler.events.bus import EventBus
from reconciler.events.sinks import journal_sink, log_sink
from reconciler.flows.incident_desk import IncidentDesk
from reconciler.flows.outbox_sender import OutboxSender
from reconciler.store.incidents import Incidents
from reconciler.store.journal import Journal
from reconciler.untrusted.http import bounded_client

if TYPE_CHECKING:
    from state.load import LoadedFleet
    from state.spec.notifications import Notifications


def one_shot_bus(loaded: LoadedFleet, journal: Journal) -> EventBus:
    """The event bus of a one-shot command: journal, log line, incidents (sent by
    `drain_outbox` before the command ends). With etcd, the fleet's incidents: the
    commands that change the fleet hold its leadership while they run."""

    bus = EventBus()
    bus.subscribe(journal_sink(journal))
    bus.subscribe(log_sink())
    bus.subscribe(IncidentDesk(_incidents(loaded, journal), _settings(loaded)))
    return bus


def drain_outbox(loaded: LoadedFleet, journal: Journal, seconds: float = 15.0) -> None:
    """Send what a one-shot command queued; what is not accepted in time stays queued
    for the next run or `reconcile watch` (said so)."""

    store = _incidents(loaded, journal)
    IncidentDesk(store, _settings(loaded)).sweep(time.time())
    with bounded_client() as client:
        sender = OutboxSender(store, client, report)
        try:
            sender.drain(loaded.written.notifications, seconds)
        finally:
            store.release()
        if (left := store.pending()) > 0:
            report(f"notify: {left} notification(s) not delivered yet; kept in the outbox")


def _incidents(loaded: LoadedFleet, journal: Journal) -> Incidents:
    coordination = loaded.fleet.reconciler.coordination
    return incidents_for(coordination, journal, owner="a one-shot command")


def _settings(loaded: LoadedFleet) -> Callable[[], Notifications | None]:
    return lambda: loaded.written.notifications


def readable_journal(journal_path: Path, read_only: bool = False) -> Journal | None:
    """The journal, when this user may open it: a reviewer's dry run works without it
    (it then lists every repository, and shows the failover state as home)."""

    try:
        return Journal(journal_path, read_only=read_only)
    except (OSError, sqlite3.Error):
        return None
