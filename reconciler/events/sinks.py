"""Sinks that subscribe to the event bus: the journal, and one JSON line per event.

Notification channels plug in the same way: a callable taking an `Event`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TextIO

from reconciler.events.bus import Event, Sink
from reconciler.store.journal import Journal


def journal_sink(journal: Journal) -> Sink:
    def record(event: Event) -> None:
        journal.record_event(
            event.at,
            event.severity,
            event.kind,
            event.host,
            event.service,
            event.message,
            event.context,
        )

    return record


def log_sink(stream: TextIO | None = None) -> Sink:
    """One JSON object per line, for journald and log shippers."""

    def log(event: Event) -> None:
        line = {"level": "event", **asdict(event)}
        print(json.dumps(line, default=str), file=stream or sys.stderr, flush=True)

    return log
