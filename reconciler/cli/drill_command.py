"""`reconcile drill`: the DR test, its table (or JSON), and an exit code that says it."""

from __future__ import annotations

import argparse
import json

from reconciler.cli import exit_codes
from reconciler.cli.one_shot import drain_outbox, one_shot_bus
from reconciler.cli.terminal import report
from reconciler.coordination.etcd_memory import shared_memory
from reconciler.coordination.guard import apply_guard, leading
from reconciler.errors import Refused
from reconciler.flows.drill import Drill
from reconciler.flows.leases import leases_kept
from reconciler.forge.source import desired_state
from reconciler.render.drill_text import drill_table
from reconciler.store.failover_state import placed
from reconciler.store.journal import Journal
from reconciler.store.lock import hosts_lock
from reconciler.untrusted.http import bounded_client


def cmd_drill(args: argparse.Namespace) -> int:
    loaded = desired_state(args.state, args.journal, shared_memory)
    if args.failover and loaded.written.failover is None:
        raise Refused(f"--failover: {args.state} has no failover section to drill")
    journal = Journal(args.journal)
    bus = one_shot_bus(loaded, journal)
    try:
        with (
            leading(loaded, journal, "drill", args.lock_timeout, report) as leadership,
            hosts_lock(journal.path.parent, loaded.fleet, args.lock_timeout, report),
            bounded_client() as client,
            leases_kept(lambda: loaded, journal.path),
        ):
            running = placed(loaded, journal)
            guard = apply_guard(leadership, running)
            game_day = loaded if args.failover else None
            drill = Drill(running, journal, client, bus, report, guard, game_day)
            steps = drill.run()
    finally:
        drain_outbox(loaded, journal)
    if args.output == "json":
        print(json.dumps([s.as_json() for s in steps], indent=2))
    else:
        print(drill_table(steps), end="")
    return (
        exit_codes.ERROR if any(s.verdict in ("breach", "failed") for s in steps) else exit_codes.OK
    )
