"""`reconcile failover` and `reconcile failback`: moves a person asks for.

`failover --to HOST` is a planned switchover (the runbook's scheduled maintenance), with
zero data loss; `failover --accept-data-loss` lets a failover held by a stale backup go
ahead; `failback` brings the services home, also with zero data loss.
"""

from __future__ import annotations

import argparse

from reconciler.cli import exit_codes
from reconciler.cli.one_shot import drain_outbox, one_shot_bus
from reconciler.cli.terminal import confirm, report, show_progress
from reconciler.coordination.etcd_memory import shared_memory
from reconciler.coordination.guard import leading
from reconciler.flows.failover_outlook import outlook
from reconciler.flows.leases import leases_kept
from reconciler.flows.mover import MoveFailed, Mover
from reconciler.flows.moves import promote, switchover
from reconciler.forge.source import desired_state
from reconciler.render.failover_text import render_failover
from reconciler.store.journal import Journal
from reconciler.store.lock import hosts_lock
from reconciler.untrusted.http import bounded_client


def cmd_failover(args: argparse.Namespace) -> int:
    return _move(args, args.to, accept=args.accept_data_loss)


def cmd_failback(args: argparse.Namespace) -> int:
    return _move(args, None, accept=False, home=True)


def _move(args: argparse.Namespace, to: str | None, accept: bool, home: bool = False) -> int:
    loaded = desired_state(args.state, args.journal, shared_memory)
    failover = loaded.written.failover
    if failover is None:
        raise MoveFailed(f"{args.state} has no failover section")
    journal = Journal(args.journal)
    bus = one_shot_bus(loaded, journal)
    try:
        lock = hosts_lock(journal.path.parent, loaded.fleet, args.lock_timeout, report)
        with (
            leading(loaded, journal, "cli", args.lock_timeout, report),
            lock,
            bounded_client() as client,
            leases_kept(lambda: loaded, journal.path),
        ):
            mover = Mover(loaded, journal, client, bus, report, show_progress)
            state = mover.store.get()
            if home:
                action = f"fail back {', '.join(failover.services)} to {failover.primary}"
            elif to is not None:
                action = f"switch {', '.join(failover.services)} over to {to}"
            elif accept:
                if not state.held:
                    raise MoveFailed("no failover is held: nothing to accept (use --to HOST)")
                action = f"fail over to {failover.backup} and accept: {state.held}"
            else:
                raise MoveFailed("say where: --to HOST, or --accept-data-loss for a held failover")
            print(f"This will {action}.")
            confirm(args.yes)
            if home:
                switchover(mover, failover.primary, "failback by the operator")
            elif to is not None:
                switchover(mover, to, "planned switchover by the operator")
            else:
                promote(mover, accept_data_loss=True)
            after = outlook(loaded, journal, client)
    finally:  # a held or failed move raised a P0 that must go out
        drain_outbox(loaded, journal)
    if after is not None:
        print(render_failover(failover, *after), end="")
    return exit_codes.OK
