"""`reconcile journal backup PATH` and `reconcile journal prune [STATE]`: the controller's
own state. The journal holds the snapshot ledger and the failover record (epoch and
placement): lose it and the controller forgets which snapshots it may restore. Back it
up online (SQLite's backup API, while the daemon writes), keep the copy off the
controller, and restore by putting it back at --journal before the daemon starts."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.cli import exit_codes
from reconciler.cli.terminal import report
from reconciler.errors import UsageError
from reconciler.store.journal import Journal
from state.load import load_fleet


def cmd_journal(args: argparse.Namespace) -> int:
    journal = Journal(args.journal)
    try:
        if args.action == "backup":
            if not args.path:
                raise UsageError("reconcile journal backup needs a PATH to write the copy to")
            target = Path(args.path)
            if target.resolve() == args.journal.resolve():
                raise UsageError("the backup's PATH is the journal itself")
            journal.backup(target)
            report(f"journal {args.journal} copied to {target} (0600)")
            return exit_codes.OK
        retention = load_fleet(args.state).fleet.reconciler.journal_retention.total_seconds()
        pruned = journal.prune(retention)
        report(
            f"journal: pruned {pruned['runs']} runs, {pruned['results']} results and "
            f"{pruned['events']} events older than {retention / 86400:g} days"
        )
        return exit_codes.OK
    finally:
        journal.close()
