"""Failover for people and for the JSON plan: per service, where it should run, where
it runs, since when, in which epoch and why; and this pass's verdict (the countdown)."""

from __future__ import annotations

import time
from typing import Any

from reconciler.engine.failover_detection import Verdict, duration
from reconciler.store.failover_state import FailoverState
from state.spec.failover import Failover


def placement_rows(failover: Failover, state: FailoverState) -> list[dict[str, Any]]:
    current = state.placement.active or failover.primary
    return [
        {
            "service": name,
            "desired_host": failover.primary,
            "current_host": current,
            "since": state.since,
            "epoch": state.placement.epoch,
            "why": state.reason or "home: the primary runs it",
        }
        for name in failover.services
    ]


def failover_json(failover: Failover, state: FailoverState, verdict: Verdict) -> dict[str, Any]:
    return {
        "primary": failover.primary,
        "backup": failover.backup,
        "verdict": verdict.action,
        "line": verdict.line,
        "epoch": state.placement.epoch,
        "held": state.held,
        "promotion_attempts": state.attempts,
        "retry_at": state.retry_at,
        "data_loss": state.data_loss,
        "move_in_progress": state.move.model_dump() if state.move else None,
        "services": placement_rows(failover, state),
    }


def render_failover(failover: Failover, state: FailoverState, verdict: Verdict) -> str:
    now = time.time()
    out = [f"failover {failover.primary} -> {failover.backup} (epoch {state.placement.epoch})"]
    if verdict.line:
        out.append(f"  {verdict.line}")
    if state.move is not None:
        out.append(
            f"  ! a {state.move.kind} to {state.move.target} is under way (step {state.move.step})"
        )
    for row in placement_rows(failover, state):
        since = f" for {duration(now - row['since'])}" if row["since"] else ""
        where = row["current_host"]
        moved = "" if where == row["desired_host"] else f" (desired {row['desired_host']})"
        out.append(f"  {row['service']:<20} on {where}{moved}{since}: {row['why']}")
    if state.data_loss:
        out.append(f"  last move: {state.data_loss}")
    return "\n".join(out) + "\n"
