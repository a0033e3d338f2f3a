"""`reconcile [STATE]` and `reconcile --dry-run [STATE]`: plan, and (outside a dry run)
ask, apply and verify, under the leadership and the hosts' lock."""

from __future__ import annotations

import argparse
import json
import signal
import time

import httpx

from reconciler.apply.context import Runner
from reconciler.cli import exit_codes
from reconciler.cli.one_shot import drain_outbox, one_shot_bus, readable_journal
from reconciler.cli.terminal import confirm, print_plan, report, show_progress
from reconciler.coordination.etcd_memory import shared_memory
from reconciler.coordination.fleet_view import catch_up
from reconciler.coordination.guard import apply_guard, leading
from reconciler.coordination.leader import Leadership
from reconciler.errors import UsageError
from reconciler.flows.failover_pass import tick
from reconciler.flows.leases import leases_kept
from reconciler.flows.lifecycle import execute_plan
from reconciler.flows.mover import Mover
from reconciler.flows.plan import Authority, dry_run, plan_for
from reconciler.forge.source import commit_in_force, desired_state
from reconciler.hosts.client import WarmWorker
from reconciler.render.backup_text import standings
from reconciler.render.outcome_text import render_apply, render_plan
from reconciler.repositories.restorable import announce_forged
from reconciler.store.journal import Journal
from reconciler.store.lock import hosts_lock
from reconciler.untrusted.http import bounded_client
from state.load import LoadedFleet, load_fleet


def cmd_reconcile(args: argparse.Namespace) -> int:
    worker: WarmWorker = args.ssh_worker  # started first (reconciler.cli.main)
    if args.review is not None and not args.dry_run:
        raise UsageError("--review BASE_STATE: expected with --dry-run (reviews apply nothing)")
    if args.output == "json" and not args.dry_run:
        raise UsageError("--output json: expected with --dry-run (an apply reports as text)")
    if args.dry_run:  # a review plans the file it is given, as written
        return _dry_run(args, load_fleet(args.state), worker)
    return _apply(args, desired_state(args.state, args.journal, shared_memory), worker)


def _dry_run(args: argparse.Namespace, loaded: LoadedFleet, worker: WarmWorker) -> int:
    review = None
    if args.review is not None:  # the base is loaded first: a proposal never outranks it
        review = Authority(load_fleet(args.review))
    journal = readable_journal(args.journal, read_only=review is not None)
    if journal is not None and review is None and (caught := catch_up(loaded, journal)):
        report(caught)  # on a follower's machine: the fleet's placement and ledger
    planned = dry_run(loaded, journal, worker, args.target, args.fresh_data, review)
    if args.output == "json":
        print(json.dumps(planned.document, indent=2))
    else:
        print_plan(planned.text)
    summary = planned.plan.summary
    return exit_codes.for_plan(summary.pending, summary.unreachable > 0)


def _apply(args: argparse.Namespace, loaded: LoadedFleet, worker: WarmWorker) -> int:

    journal = Journal(args.journal)
    # A person's apply never races the daemon: with etcd, it takes the leadership.
    with leading(loaded, journal, "cli", args.lock_timeout, report) as leadership:
        return _apply_leading(args, loaded, worker, journal, leadership)


def _apply_leading(
    args: argparse.Namespace,
    loaded: LoadedFleet,
    worker: WarmWorker,
    journal: Journal,
    leadership: Leadership,
) -> int:
    lock = hosts_lock(journal.path.parent, loaded.fleet, args.lock_timeout, report)
    finish_before_stopping()
    renewing = leases_kept(lambda: loaded, journal.path, renew_first=False)  # tick renews
    with lock, bounded_client() as client, renewing:
        if loaded.written.failover is not None:  # leases first: guarded units need one
            tick(_mover(loaded, journal, client))
            report(LEASE_NOTE)
        planned = plan_for(
            loaded, journal, client, worker, "keep", args.target, fresh_data=args.fresh_data
        )
        loaded, plan, ledger = planned.loaded, planned.plan, planned.ledger
        assert ledger is not None  # a journal was given
        print_plan(render_plan(plan))
        print(standings(loaded, ledger, time.time(), planned.observed), end="", flush=True)
        guard = apply_guard(leadership, loaded, worker)
        runner = Runner(
            client,
            journal,
            report,
            show_progress,
            guard=guard,
            ssh=worker,
            fresh_data=args.fresh_data,
        )
        result = execute_plan(
            loaded, plan, runner, "apply", args.target, before_apply=lambda: confirm(args.yes)
        )
        if loaded.commit is not None:  # applied, or nothing to apply (a refusal raised)
            commit_in_force(
                args.state, journal.path, loaded.commit, shared_memory
            )  # `verify: all` from here
        announce_forged(ledger, one_shot_bus(loaded, journal))
        if loaded.written.failover is not None or loaded.written.notifications is not None:
            drain_outbox(loaded, journal)
    if result is None:
        return exit_codes.OK
    print(render_apply(result), end="")
    return exit_codes.OK if result.converged else exit_codes.ERROR


LEASE_NOTE = (
    "failover: leases renewed; `reconcile watch` keeps renewing them (without it the "
    "primary stops its failover services fence_after from now)"
)


def _mover(loaded: LoadedFleet, journal: Journal, client: httpx.Client) -> Mover:
    return Mover(loaded, journal, client, one_shot_bus(loaded, journal), report, show_progress)


def finish_before_stopping() -> None:
    """On SIGTERM, let the apply under way finish (hosts are mid-change) before exiting,
    as `reconcile watch` does; a second signal, or SIGKILL, still stops at once."""

    def finish_first(signum: int, _frame: object) -> None:
        report("SIGTERM: finishing the apply under way first; send it again to stop now")
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, finish_first)
