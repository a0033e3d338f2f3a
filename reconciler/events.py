"""Events: what the reconciler wants a person (or a notification channel) to know.

An `Event` has a severity from the seed's matrix (P0 to P3). The `EventBus` hands
each event to every subscriber; the journal and a structured log line subscribe
today, and notification channels subscribe the same way. A failing subscriber is
logged and never stops the others or the loop.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from reconciler.journal import Journal

Severity = Literal["P0", "P1", "P2", "P3"]
Subscriber = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    severity: Severity
    kind: str
    message: str
    host: str | None = None
    service: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class EventBus:
    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def emit(self, event: Event) -> None:
        for subscriber in self.subscribers:
            try:
                subscriber(event)
            except Exception as exc:  # one broken channel must not silence the rest
                print(
                    json.dumps({"level": "error", "msg": f"event subscriber failed: {exc!r}"}),
                    file=sys.stderr,
                    flush=True,
                )


def journal_subscriber(journal: Journal) -> Subscriber:
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


def log_subscriber(stream: Any = None) -> Subscriber:
    """One JSON object per line, for journald and log shippers."""

    def log(event: Event) -> None:
        line = {"level": "event", **asdict(event)}
        print(json.dumps(line, default=str), file=stream or sys.stderr, flush=True)

    return log
