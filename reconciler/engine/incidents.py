"""Incidents: events with one fingerprint are one incident, opened, escalated (its
severity raised), repeated at most every `repeat_interval`, and resolved when the
condition clears. Pure: an event and the incident it belongs to in, the incident and
the notifications to send out.

A fingerprint is the condition's family, its host and its service: `heal_failed` and
`escalation` for one service are one "unhealthy" incident, which `healed` resolves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciler.events.bus import Event, EventKind
from state.spec.base import Severity
from state.spec.notifications import EscalationLevel

Transition = Literal["opened", "escalated", "repeated", "resolved"]

# Which condition an event reports, and whether it opens (or feeds) or clears it.
OPENS: dict[EventKind, str] = {
    "heal_failed": "unhealthy",
    "escalation": "unhealthy",
    "pass_crashed": "pass",
    "spec_rejected": "spec",
    "backup_check_failed": "backup_check",
    "backup_forged": "backup_forged",  # nothing clears it: a person reads and acks it
    "drill_failed": "drill",
    "backup_copy_failed": "backup_copy",
    "failover": "failover",
    "failover_held": "failover",
    "failover_aborted": "failover",
    "switchover": "failover",  # a planned move away from the primary: not home either
    "primary_down": "primary",
}
CLEARS: dict[EventKind, str] = {
    "healed": "unhealthy",
    "spec_applied": "spec",
    "backup_check_passed": "backup_check",
    "drill_passed": "drill",
    "backup_copied": "backup_copy",
    "failback": "failover",
    "primary_back": "primary",
}
PAIR_WIDE = {"failover", "spec", "pass"}  # one incident per fleet, whatever host is named
RANK: dict[Severity, int] = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}


class Step(BaseModel):
    """One line of an incident's timeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float
    what: str


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    fingerprint: str
    family: str
    host: str | None
    service: str | None
    severity: Severity
    status: Literal["open", "resolved"] = "open"
    first_seen: float
    last_seen: float
    count: int = 1
    last_sent: float | None = None
    resolved_at: float | None = None
    acked: bool = False
    level: int = Field(0, description="Escalation levels reached (0: none).")
    message: str
    told: tuple[str, ...] = Field(default=(), description="Channels told it opened.")
    timeline: tuple[Step, ...] = ()


class Notice(BaseModel):
    """A notification to send: one incident, one transition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident: Incident
    transition: Transition
    sequence: int  # per incident: with the transition, the idempotency key


def fingerprint(event: Event) -> tuple[str, str] | None:
    """(family, fingerprint) of the condition `event` reports, or None (not a condition)."""
    family = OPENS.get(event.kind) or CLEARS.get(event.kind)
    if family is None:
        return None
    if family in PAIR_WIDE:
        return family, family
    return family, f"{family}:{event.host or '-'}:{event.service or '-'}"


def on_event(
    current: Incident | None,
    event: Event,
    repeat: Callable[[Severity], timedelta],
    new_id: str,
) -> tuple[Incident | None, Transition | None]:
    """The incident after `event`, and the transition to notify (None: nothing to send)."""
    found = fingerprint(event)
    if found is None:
        return current, None
    family, key = found
    clears = event.kind in CLEARS
    if current is None or current.status == "resolved":
        return (current, None) if clears else (_opened(event, family, key, new_id), "opened")
    if clears:
        step = Step(at=event.at, what=f"resolved: {event.message}")
        resolved = current.model_copy(
            update={
                "status": "resolved",
                "resolved_at": event.at,
                "last_seen": event.at,
                "timeline": (*current.timeline, step),
            }
        )
        return resolved, "resolved"
    raised = RANK[event.severity] < RANK[current.severity]
    seen = current.model_copy(
        update={
            "last_seen": event.at,
            "count": current.count + 1,
            "message": event.message,
            "severity": event.severity if raised else current.severity,
        }
    )
    if raised:
        step = Step(at=event.at, what=f"escalated to {event.severity}: {event.message}")
        return seen.model_copy(update={"timeline": (*seen.timeline, step)}), "escalated"
    due = current.last_sent is None or (
        event.at - current.last_sent >= repeat(current.severity).total_seconds()
    )
    if due and not current.acked:
        step = Step(at=event.at, what=f"repeated (x{seen.count}): {event.message}")
        return seen.model_copy(update={"timeline": (*seen.timeline, step)}), "repeated"
    return seen, None


def _opened(event: Event, family: str, key: str, new_id: str) -> Incident:
    first = Step(at=event.at, what=f"opened ({event.severity}): {event.message}")
    return Incident.model_validate(
        {
            "id": new_id,
            "fingerprint": key,
            "family": family,
            "host": event.host,
            "service": event.service,
            "severity": event.severity,
            "first_seen": event.at,
            "last_seen": event.at,
            "message": event.message,
            "timeline": (first,),
        }
    )


CATEGORY = {
    "unhealthy": "service_failure",
    "pass": "reconciler_failure",
    "spec": "configuration",
    "backup_check": "backup_failure",
    "drill": "backup_failure",
    "failover": "failover",
}
REQUESTED = {"P0": "grandfather_intervention", "P1": "father_intervention"}


def escalate(
    incident: Incident, levels: list[EscalationLevel], now: float
) -> tuple[Incident, EscalationLevel | None]:
    """The incident moved up to the highest level its age reaches, and that level; or
    the incident as it is and None (resolved, acknowledged, or no new level)."""
    if incident.status != "open" or incident.acked:
        return incident, None
    reached = [
        i + 1
        for i, level in enumerate(levels)
        if now - incident.first_seen >= level.after.total_seconds()
    ]
    if not reached or max(reached) <= incident.level:
        return incident, None
    index = max(reached)
    level = levels[index - 1]
    severity = incident.severity
    if level.severity is not None and RANK[level.severity] < RANK[severity]:
        severity = level.severity
    step = Step(
        at=now,
        what=f"escalated to level {index + 1} ({severity}, "
        f"{level.requested_action}) after {int(now - incident.first_seen)}s",
    )
    moved = incident.model_copy(
        update={"level": index, "severity": severity, "timeline": (*incident.timeline, step)}
    )
    return moved, level


def route(
    routes: dict[Severity, list[str]], incident: Incident, transition: Transition
) -> list[str]:
    """The channels a transition goes to: by severity; a resolution goes to every
    channel that was told the incident opened, whatever the routes say now."""
    if transition == "resolved":
        return list(incident.told)
    return list(routes.get(incident.severity, []))


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def distress_signal(
    incident: Incident,
    transition: Transition,
    agent: str,
    now: float,
    *,
    timeout: timedelta,
    requested: str | None = None,
) -> dict[str, Any]:
    """The runbook's distress signal for `incident`: its exact keys. `last_success` is the
    last moment the condition was known fine (the first failure, at the latest)."""
    return {
        "timestamp": _iso(now),
        "agent": agent,
        "severity": incident.severity,
        "category": CATEGORY.get(incident.family, incident.family),
        "component": incident.service or incident.host or incident.family,
        "message": incident.message
        if transition != "resolved"
        else f"resolved: {incident.message}",
        "context": {
            "last_success": _iso(incident.first_seen),
            "attempts": incident.count,
            "error": incident.message,
            "auto_recovery_attempted": incident.family in ("unhealthy", "failover"),
        },
        "requested_action": "none"
        if transition == "resolved"
        else requested or REQUESTED.get(incident.severity, "none"),
        "escalation_timeout": _iso(now + timeout.total_seconds()),
    }


def payload(incident: Incident, transition: Transition, signal: dict[str, Any]) -> dict[str, Any]:
    """What the outbox keeps for one notification, fixed when queued; `signal` is its
    distress signal (`distress_signal`)."""
    where = "/".join(x for x in (incident.host, incident.service) if x) or "fleet"
    return {
        "incident": incident.id,
        "fingerprint": incident.fingerprint,
        "severity": incident.severity,
        "transition": transition,
        "text": f"[{incident.severity}] {transition}: {incident.message} ({where}; incident "
        f"{incident.id}, seen {incident.count}x)",
        "distress": signal,
    }
