"""The post-incident review draft: the runbook's PIR template, filled from the journal.

What the journal knows is filled in (summary, timeline, alerts and to whom, the runs
and git commits in the incident's window, the last errors); what only a person knows
(root cause, prevention, action items, lessons) is left as prompts.
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.engine.failover_detection import duration
from reconciler.store.journal import EventRecord, RunRecord


def _at(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _timeline(
    incident: dict[str, Any],
    deliveries: list[tuple[str, str, float | None, str | None]],
    window: list[RunRecord],
) -> list[tuple[float, str]]:
    """The incident's own steps, each alert's delivery, and the runs in its window."""
    start = incident["first_seen"]
    timeline: list[tuple[float, str]] = [
        (step["at"], step["what"]) for step in incident["timeline"]
    ]
    for key, channel, sent, error in deliveries:
        transition = key.split(":")[1] if ":" in key else key
        if sent:
            timeline.append((sent, f"alert ({transition}) delivered to {channel}"))
        else:
            timeline.append((start, f"alert ({transition}) to {channel} not delivered: {error}"))
    for run in window:
        timeline.append((run.started, f"action: run {run.id} ({run.mode}) ended {run.outcome}"))
    return timeline


def render_pir(
    incident: dict[str, Any],
    deliveries: list[tuple[str, str, float | None, str | None]],
    runs: list[RunRecord],
    events: list[EventRecord],
) -> str:
    start = incident["first_seen"]
    end = incident.get("resolved_at")
    window = [r for r in runs if start - 60 <= r.started <= (end or time.time()) + 60]
    where = "/".join(x for x in (incident["host"], incident["service"]) if x) or "fleet"
    lasting = (
        f"{_at(start)} to {_at(end)} ({duration(end - start)})"
        if end
        else (f"{_at(start)} to now (still open)")
    )
    timeline = _timeline(incident, deliveries, window)
    lines = [
        f"# Post-Incident Review: {incident['id']}",
        "",
        "## Summary",
        f"- **Date:** {time.strftime('%Y-%m-%d', time.localtime(start))}",
        f"- **Duration:** {lasting}",
        f"- **Severity:** {incident['severity']}",
        f"- **Component:** {where}",
        f"- **Impact:** {incident['message']} (seen {incident['count']} times)",
        "",
        "## Timeline",
        *(f"- {_at(at)} - {what}" for at, what in sorted(timeline)),
        "",
        "## Evidence",
        *(f"- {_at(e.at)} {e.severity} {e.kind}: {e.message}" for e in events[:10]),
        *(
            f"- run {r.id}: {r.outcome or 'running'}"
            + (f", git {r.git_commit[:12]}" if r.git_commit else "")
            + (f", error: {r.error}" if r.error else "")
            for r in window
        ),
        "",
        "## Root Cause",
        "[Detailed explanation of what caused the incident]",
        "",
        "## Resolution",
        (
            f"Resolved at {_at(end)}: {incident['timeline'][-1]['what']}"
            if end
            else "[Not resolved yet]"
        ),
        "",
        "## Prevention",
        "[What changes will prevent recurrence]",
        "",
        "## Action Items",
        "- [ ] [Owner] - [Action] - [Due date]",
        "",
        "## Lessons Learned",
        "[What did we learn from this incident]",
    ]
    return "\n".join(lines) + "\n"
