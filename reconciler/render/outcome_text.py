"""Render an apply's outcome for people (the plan itself: reconciler.render.plan_text)."""

from __future__ import annotations

from reconciler.apply.result import ApplyResult
from reconciler.engine.masking import mask_secrets
from reconciler.render.plan_text import render_plan, summary_line

__all__ = ["mask_secrets", "render_apply", "render_plan", "summary_line"]


def render_apply(result: ApplyResult) -> str:
    """Per host: what changed, what failed and why; then the verdict and the time."""
    out = ["", "Apply summary:"]
    for name, outcome in result.hosts.items():
        status = "FAILED" if outcome.error else "ok"
        took = f" in {outcome.seconds:.1f}s" if outcome.seconds else ""
        out.append(f"  host {name}: {status}, {len(outcome.changed)} changed{took}")
        out.extend(f"      changed  {op}" for op in outcome.changed)
        if outcome.error:
            out.append(f"      error    {outcome.error}")
    remaining = result.remaining
    if result.converged:
        out.append(f"Converged in {result.seconds:.1f}s: the fleet matches the desired state.")
    else:
        left = summary_line(remaining.summary) if remaining else "verification did not run"
        out.append(f"NOT converged after {result.seconds:.1f}s. Still pending: {left}")
    return "\n".join(out) + "\n"
