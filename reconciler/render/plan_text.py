"""A plan as text for people: grouped by host, Terraform-like marks, masked diffs. Pure:
the CLI's `--dry-run`, `status` and the dashboard's pending plan all render it here."""

from __future__ import annotations

from reconciler.engine.masking import mask_secrets
from reconciler.engine.plan import Plan, Summary

MARKS = {"create": "+", "update": "~", "delete": "-", "alert": "!"}


def render_plan(plan: Plan, show_diffs: bool = True) -> str:
    """The plan as text; ends with a one-line summary."""
    out = [f"Plan for {plan.state_file} (sha256 {plan.state_sha256[:12]})", ""]
    for host in plan.hosts:
        status = "" if host.reachable else "  [unreachable]"
        if any(a.kind == "not_contacted" for a in host.actions):
            status = "  [not contacted]"
        out.append(f"host {host.name} ({host.address}){status}")
        if not host.actions:
            out.append("    (no changes)")
        width = max((len(a.subject) for a in host.actions), default=0)
        for action in host.actions:
            out.append(f"  {MARKS[action.action]} {action.subject:<{width}}  {action.reason}")
            if show_diffs and action.diff:
                out.extend(f"      {line}" for line in mask_secrets(action.diff).splitlines())
        out.append("")
    out.append(summary_line(plan.summary))
    return "\n".join(out) + "\n"


def summary_line(s: Summary) -> str:
    if not s.pending:
        return "No changes. The fleet matches the desired state."
    line = f"Plan: {s.create} to add, {s.update} to change, {s.delete} to remove"
    extras = []
    if s.unreachable:
        extras.append(f"{s.unreachable} host{'s' if s.unreachable != 1 else ''} unreachable")
    if s.unhealthy:
        extras.append(f"{s.unhealthy} unhealthy")
    if s.backups_due:
        extras.append(f"{s.backups_due} backup{'s' if s.backups_due != 1 else ''} due")
    return line + ("; " + ", ".join(extras) if extras else "") + "."
