"""What `reconcile` exits with: one contract for every command (README, "Exit codes").

CI can tell "needs apply" (2) from "could not see every host" (3) from "a typo" (64).
"""

from __future__ import annotations

OK = 0
"""Done: converged, valid, nothing to apply."""
ERROR = 1
"""An error: a bad state file, a refused or failed run, a breach a drill found."""
CHANGES_PENDING = 2
"""Only where a plan is the answer (`--dry-run`, `review`): changes are pending."""
HOSTS_UNOBSERVED = 3
"""Only where a plan is the answer: at least one host could not be observed, so the
plan is partial (takes precedence over 2)."""
USAGE = 64
"""A usage error: an unknown command, flag or value (EX_USAGE of sysexits.h)."""
INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT)."""
BROKEN_PIPE = 141
"""The reader of the output went away, as in `reconcile schema | head -1` (128 + SIGPIPE)."""

TABLE = (
    (OK, "done: converged, valid, or nothing to do"),
    (ERROR, "error: a bad state file, a failed or refused run, a drill's breach"),
    (CHANGES_PENDING, "--dry-run and review only: changes are pending"),
    (HOSTS_UNOBSERVED, "--dry-run, review and status only: a host could not be observed"),
    (USAGE, "usage error: an unknown command, flag or value"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
    (BROKEN_PIPE, "the output's reader went away (a closed pipe)"),
)


def for_plan(pending: bool, unobserved: bool) -> int:
    """A plan's code: 3 when a host could not be observed, else 2 when changes are
    pending, else 0."""
    if unobserved:
        return HOSTS_UNOBSERVED
    return CHANGES_PENDING if pending else OK


def table_text() -> str:
    """The table as `reconcile -h` prints it."""
    return "exit codes:\n" + "".join(f"  {code:<4} {meaning}\n" for code, meaning in TABLE)
