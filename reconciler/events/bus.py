"""Events: what the reconciler wants a person (or a notification channel) to know.

An `Event` has a severity from the runbook's matrix (P0 to P3, `state.spec.base.Severity`,
the one definition) and a kind from a closed set. The `EventBus` hands each event to
every sink; a failing sink is logged and never stops the others or the loop.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from state.spec.base import Severity

EventKind = Literal[
    "healed",
    "heal_failed",
    "escalation",
    "spec_applied",
    "spec_rejected",
    "history_rewritten",
    "spec_pinned",
    "spec_accepted",
    "spec_unpinned",
    "applying_suspended",
    "applying_resumed",
    "pass_crashed",
    "backup_check_passed",
    "backup_check_failed",
    "backup_forged",
    "backup_locked",
    "backup_copied",
    "backup_copy_failed",
    "drill_passed",
    "drill_failed",
    "failover",
    "failover_held",
    "failover_aborted",
    "failback",
    "switchover",
    "primary_down",
    "primary_back",
]
"""What happened. Routing and look-ups use the kind, never the message text."""

Sink = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    severity: Severity
    kind: EventKind
    message: str
    host: str | None = None
    service: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class EventBus:
    def __init__(self) -> None:
        self.sinks: list[Sink] = []

    def subscribe(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink(event)
            except Exception as exc:  # one broken channel must not silence the rest
                print(
                    json.dumps({"level": "error", "msg": f"event sink failed: {exc!r}"}),
                    file=sys.stderr,
                    flush=True,
                )
