"""The lifecycle of one journaled run, written once for the CLI and the daemon.

`execute_plan` records the run as started (with the plan and the state file's git
provenance), applies it, and records how it ended: `converged`, `failed`, or
`crashed` when an exception (or a signal) cut it short. A plan with nothing pending
is recorded as `no-changes` without applying anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from reconciler.apply.context import RunContext, Runner
from reconciler.apply.result import ApplyResult
from reconciler.engine.plan import Plan, plan_to_json
from reconciler.flows.once import apply_plan
from reconciler.store.journal import RunMode
from reconciler.store.state_origin import git_provenance
from state.load import LoadedFleet


def execute_plan(
    loaded: LoadedFleet,
    plan: Plan,
    runner: Runner,
    mode: RunMode,
    targets: list[str] | tuple[str, ...] = (),
    before_apply: Callable[[], None] | None = None,
) -> ApplyResult | None:
    """Journal and apply `plan`; None when nothing was pending (nothing applied).

    `before_apply` runs after the plan is known to be pending and before anything
    changes (the CLI asks for confirmation there); an exception from it stops the run.
    """
    commit, dirty = (loaded.commit, False) if loaded.commit else git_provenance(loaded.file)
    plan_json = plan_to_json(plan)
    journal = runner.journal
    for run_id in journal.mark_abandoned():
        runner.report(f"run {run_id} was cut short (its process is gone): marked abandoned")
    if not plan.summary.pending:
        run_id = journal.start_run(str(loaded.file), loaded.sha256, commit, dirty, mode, plan_json)
        journal.finish_run(run_id, "no-changes")
        return None
    if before_apply is not None:
        before_apply()
    if runner.guard is not None:
        runner.guard(sorted({a.host for a in plan.actions}))
    run_id = journal.start_run(str(loaded.file), loaded.sha256, commit, dirty, mode, plan_json)
    runner.report(f"run {run_id} started; journal {journal.path}")
    ctx = RunContext.started(runner, run_id, tuple(targets))
    started = time.monotonic()
    try:
        result = apply_plan(loaded, plan, ctx)
    except BaseException as exc:
        journal.finish_run(run_id, "crashed", f"{type(exc).__name__}: {exc}")
        raise
    result.seconds = time.monotonic() - started
    journal.finish_run(run_id, "converged" if result.converged else "failed", result.errors)
    return result
