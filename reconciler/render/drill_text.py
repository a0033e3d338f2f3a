"""The DR drill's table, as `reconcile drill` and `reconcile status` print it."""

from __future__ import annotations

from reconciler.engine.drill_step import DrillStep


def drill_table(steps: list[DrillStep]) -> str:
    """One row per step; a skipped or failed step says why in its last column."""
    rows = [("step", "subject", "objective", "measured", "verdict", "note")]
    for s in steps:
        measured = "-" if s.measured_s is None else f"{s.measured_s:.2f}s"
        note = s.detail if s.verdict != "pass" else ""
        rows.append((s.kind, s.subject, s.objective, measured, s.verdict.upper(), note))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    bad = [s for s in steps if s.verdict in ("breach", "failed")]
    verdict = f"DRILL FAILED at {bad[0].kind} {bad[0].subject}" if bad else "DRILL PASSED"
    skipped = sum(s.verdict == "skipped" for s in steps)
    counted = f"{len(steps)} step(s)" + (f", {skipped} skipped" if skipped else "")
    return "\n".join([*lines, "", f"{verdict}: {counted}"]) + "\n"
