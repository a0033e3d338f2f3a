"""The incident desk: subscribed to the event bus, it files every event that reports a
condition into its incident (state.engine.incidents) and queues the notifications the
incident's transition calls for in the outbox. Sending is the outbox sender's job, off
the loop's thread (reconciler.flows.outbox_sender).

Inhibition: while a host-level incident is open (the host is unreachable), events about
the services on that host are folded into it: one outage is one page.

With etcd, incidents and the outbox are the fleet's (reconciler.coordination.
etcd_incidents) and only the leader files: a standby's events are journaled and
logged, and the leader, watching the same fleet and source, files its own.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from reconciler.engine.incidents import (
    CLEARS,
    Incident,
    Transition,
    distress_signal,
    escalate,
    fingerprint,
    on_event,
    payload,
    route,
)
from reconciler.events.bus import Event
from reconciler.store.incidents import Incidents
from reconciler.store.memory import Deposed
from state.spec.base import Severity
from state.spec.notifications import DEFAULT_REPEAT, Notifications


def new_incident_id() -> str:
    return f"INC-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


EARLY_EVENTS = 200  # kept until the desk knows its store (a daemon's start-up)


class IncidentDesk:
    """Files events into `store`; given None, it keeps the first events until `open`
    names the store (a daemon knows it only once the spec and its leadership are)."""

    def __init__(
        self, store: Incidents | None, settings: Callable[[], Notifications | None]
    ) -> None:
        self.store, self.settings = store, settings
        self.early: list[Event] = []
        self.queued: Callable[[], None] = lambda: None
        """Told when a notification was queued (the watch's sender wakes at once)."""

    def open(self, store: Incidents) -> None:
        self.store, early, self.early = store, self.early, []
        for event in early:
            self(event)

    def __call__(self, event: Event) -> None:
        if self.store is None:
            self.early = [*self.early, event][-EARLY_EVENTS:]
            return
        try:
            self._file(self.store, event)
        except Deposed:
            return  # a standby (or a deposed leader): the leader files

    def _file(self, store: Incidents, event: Event) -> None:
        found = fingerprint(event)
        if found is None:
            return
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
            incident = self._notify(store, notifications, incident, transition, channels, event.at)
        if notifications is not None:  # an event may come after a level's time
            incident = self._escalate(store, notifications, incident, event.at)
        store.put(incident.id, incident.fingerprint, incident.status, incident.model_dump())

    def sweep(self, now: float) -> None:
        """Move open incidents up the escalation levels their age reaches, also when no
        new event came (the loop calls this every probe pass)."""
        notifications = self.settings()
        store = self.store
        if notifications is None or not notifications.escalation or store is None:
            return
        try:
            for raw in store.recent(200):
                if raw["status"] == "open":
                    incident = Incident.model_validate(raw)
                    moved = self._escalate(store, notifications, incident, now)
                    if moved is not incident:
                        store.put(moved.id, moved.fingerprint, moved.status, moved.model_dump())
        except Deposed:
            return

    def _escalate(
        self, store: Incidents, notifications: Notifications, incident: Incident, now: float
    ) -> Incident:
        moved, level = escalate(incident, notifications.escalation, now)
        if level is None:
            return incident
        channels = sorted(set(level.notify) | set(route(notifications.routes, moved, "escalated")))
        return self._notify(
            store, notifications, moved, "escalated", channels, now, level.requested_action
        )

    def _notify(
        self,
        store: Incidents,
        notifications: Notifications,
        incident: Incident,
        transition: Transition,
        channels: list[str],
        at: float,
        requested: str | None = None,
    ) -> Incident:
        """Queue `transition` of `incident` to `channels` (and its distress file)."""
        sequence = len(incident.timeline)
        repeat = self._repeat(incident.severity)
        signal = distress_signal(
            incident, transition, notifications.agent, at, timeout=repeat, requested=requested
        )
        message = payload(incident, transition, signal)
        for channel in channels:
            store.enqueue(
                f"{incident.id}:{transition}:{sequence}:{channel}", channel, incident.id, message
            )
        if channels:
            self.queued()
        if notifications.distress_dir and message["distress"]["requested_action"] != "none":
            name = f"{incident.id}-{sequence}"
            write_distress(Path(notifications.distress_dir), name, message["distress"])
        told = incident.told
        if transition != "resolved":
            told = tuple(sorted(set(told) | set(channels)))
        return incident.model_copy(update={"last_sent": at, "told": told})

    def _repeat(self, severity: Severity) -> timedelta:
        notifications = self.settings()
        return notifications.repeat_for(severity) if notifications else DEFAULT_REPEAT[severity]


def write_distress(directory: Path, name: str, signal: dict[str, Any]) -> Path:
    """The distress signal as `DIRECTORY/NAME.json`, written whole (rename), 0640."""
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    target = directory / f"{name}.json"
    partial = directory / f".{name}.json.partial"
    partial.write_text(json.dumps(signal, indent=2) + "\n")
    partial.chmod(0o640)
    partial.replace(target)
    return target
