"""The incident desk: subscribed to the event bus, it files every event that reports a
condition into its incident (state.engine.incidents) and queues the notifications the
incident's transition calls for in the outbox. Sending is the outbox sender's job, off
the loop's thread (reconciler.run.outbox_sender).

Inhibition: while a host-level incident is open (the host is unreachable), events about
the services on that host are folded into it: one outage is one page.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from reconciler.engine.incidents import (
    CLEARS,
    Incident,
    fingerprint,
    on_event,
    payload,
    route,
)
from reconciler.events.bus import Event
from reconciler.store.incidents import IncidentStore
from reconciler.store.journal import Journal
from state.models import DEFAULT_REPEAT, Notifications, Severity


def new_incident_id() -> str:
    return f"INC-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


class IncidentDesk:
    def __init__(self, journal: Journal, settings: Callable[[], Notifications | None]) -> None:
        self.journal, self.settings = journal, settings

    def __call__(self, event: Event) -> None:
        found = fingerprint(event)
        if found is None:
            return
        store = IncidentStore(self.journal)
        family, key = found
        host_key = f"{family}:{event.host or '-'}:-"
        if event.service is not None and event.kind not in CLEARS and store.open_for(host_key):
            event = dataclasses.replace(
                event, service=None, message=f"{event.service}: {event.message}"
            )
            key = host_key
        notifications = self.settings()
        raw = store.open_for(key)
        current = Incident.model_validate(raw) if raw else None
        incident, transition = on_event(current, event, self._repeat, new_incident_id())
        if incident is None:
            return
        if transition is not None and notifications is not None:
            channels = route(notifications.routes, incident, transition)
            sequence = len(incident.timeline)
            repeat = self._repeat(incident.severity)
            message = payload(incident, transition, notifications.agent, event.at, repeat)
            for channel in channels:
                store.enqueue(
                    f"{incident.id}:{transition}:{sequence}:{channel}",
                    channel,
                    incident.id,
                    message,
                )
            told = incident.told
            if transition != "resolved":
                told = tuple(sorted(set(told) | set(channels)))
            incident = incident.model_copy(update={"last_sent": event.at, "told": told})
        store.put(incident.id, incident.fingerprint, incident.status, incident.model_dump())

    def _repeat(self, severity: Severity) -> timedelta:
        notifications = self.settings()
        return notifications.repeat_for(severity) if notifications else DEFAULT_REPEAT[severity]
