"""`reconcile journal backup PATH` and `reconcile journal prune [STATE]`: the controller's
own state. The journal holds the snapshot ledger and the failover record (epoch and
placement): lose it and the controller forgets which snapshots it may restore. Back it
up online (SQLite's backup API, while the daemon writes), keep the copy off the
controller, and restore by putting it back at --journal before the daemon starts."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reconciler.cli import exit_codes
from reconciler.cli.terminal import report
from reconciler.coordination.guard import leading
from reconciler.coordination.migration import migrate, migrated
from reconciler.errors import Refused, UsageError
from reconciler.store.journal import Journal
from state.load import load_fleet
from state.spec.controller import EtcdCoordination


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


def cmd_migrate_store(args: argparse.Namespace) -> int:
    """`reconcile migrate-store [STATE]`: with etcd coordination, this journal's memory
    moves into etcd under the leadership, once (a second run says when it moved)."""
    loaded = load_fleet(args.state)
    if not isinstance(loaded.fleet.reconciler.coordination, EtcdCoordination):
        raise Refused(
            f"{args.state}: reconciler.coordination is not etcd: this journal is the "
            "fleet's memory already (nothing to move)"
        )
    journal = Journal(args.journal)
    if (before := migrated(journal)) is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(before.at))
        print(f"moved on {when}, once: {before}")
        return exit_codes.OK
    with leading(loaded, journal, "migrate", args.lock_timeout, report) as leadership:
        moved = migrate(loaded, journal, leadership)
    print(moved if moved is not None else "nothing moved")
    return exit_codes.OK
