"""`reconcile backup list|now|copy|forget|check|drill|restore|rotate-key`: one policy at a
time (`--copy NAME`: one of its copies)."""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from backups.repository import open_copy
from backups.restic_repo import ResticError, Snapshot
from reconciler.cli import exit_codes
from reconciler.cli.one_shot import one_shot_bus, readable_journal
from reconciler.cli.terminal import confirm, report
from reconciler.coordination.etcd_memory import shared_memory
from reconciler.coordination.fleet_view import catch_up
from reconciler.coordination.guard import leading
from reconciler.errors import Refused, UsageError
from reconciler.events.bus import EventBus
from reconciler.events.sinks import journal_sink, log_sink
from reconciler.flows.verifications import checked, copied, drilled
from reconciler.forge.source import desired_state
from reconciler.render.backup_text import render_snapshots, restore_plan, snapshots_json
from reconciler.repositories.operations import (
    BackupFailed,
    UnknownPolicy,
    apply_retention,
    backup_now,
    list_snapshots,
    pick_snapshot,
    require_policy,
    restore_to_host,
)
from reconciler.repositories.restorable import announce_forged
from reconciler.repositories.rotate import rotate_key
from reconciler.repositories.verify import rotating_subset
from reconciler.store.failover_state import placed
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from state.secrets import SecretUnavailable
from state.types import SECRET_REF_PATTERN, check_path

if TYPE_CHECKING:
    from state.load import LoadedFleet


def cmd_backup(args: argparse.Namespace) -> int:

    if args.output == "json" and args.action not in {"list", "check", "drill"}:
        raise UsageError(
            f"reconcile backup {args.action}: --output json is for list, check and drill"
        )
    loaded = desired_state(args.state, args.journal, shared_memory)
    journal = readable_journal(args.journal)
    if journal is not None:  # failed over, a moved policy runs on the backup
        if caught := catch_up(loaded, journal):  # as the fleet's leader left them
            report(caught)
        loaded = placed(loaded, journal)
    ledger = Ledger(journal) if journal is not None else None
    if args.action == "list" and args.copy is not None:
        return _list_copy(args, loaded, ledger)
    if args.action == "list":
        names = [args.policy] if args.policy else sorted(loaded.fleet.backups)
        rows = {n: list_snapshots(loaded, n) for n in names}
        verdicts: dict[str, dict[str, str]] | None = None
        if ledger is not None:
            verdicts = {
                n: {e.snapshot_id: e.verdict for e in ledger.entries(loaded.fleet, n)}
                for n in names
            }
        _print_snapshots(args, loaded, rows, verdicts)
        return exit_codes.OK
    if not args.policy:
        raise UsageError(f"reconcile backup {args.action} needs a POLICY")
    _require_copy(loaded, args)
    if args.action in CHANGES:  # with etcd, a person's backup never races the leader's
        with leading(loaded, Journal(args.journal), "backup", args.lock_timeout, report):
            return _change(args, loaded)
    return _verify(args, loaded, Ledger(Journal(args.journal)))


CHANGES = frozenset({"now", "copy", "forget", "restore", "rotate-key"})
"""The actions that write to a repository or a host (check and drill only read)."""


def _change(args: argparse.Namespace, loaded: LoadedFleet) -> int:
    if args.action == "copy":
        return _copy(args, loaded, Ledger(Journal(args.journal)))
    if args.action == "forget":
        kept = apply_retention(loaded, args.policy, report, Ledger(Journal(args.journal)))
        print(render_snapshots(loaded, {args.policy: kept}), end="")
        return exit_codes.OK
    if args.action == "rotate-key":
        return _rotate(args, loaded)
    ledger = Ledger(Journal(args.journal))  # restores and new backups need the ledger
    if args.action == "restore":
        return _restore(args, loaded, ledger)
    started = time.monotonic()
    try:
        snapshot = backup_now(loaded, args.policy, args.journal.parent, report, ledger)
    finally:  # listing the repository judged every snapshot in it
        announce_forged(ledger, one_shot_bus(loaded, ledger.journal))
    print(
        f"backup {args.policy}: snapshot {snapshot.short_id} at {snapshot.time:%Y-%m-%d %H:%M:%S} "
        f"({time.monotonic() - started:.1f}s)"
    )
    return exit_codes.OK


def _list_copy(args: argparse.Namespace, loaded: LoadedFleet, ledger: Ledger | None) -> int:
    """`backup list POLICY --copy NAME`: the copy's snapshots, with the ledger's word."""

    if not args.policy:
        raise UsageError("reconcile backup list --copy NAME needs a POLICY")
    _require_copy(loaded, args)

    try:
        listed = open_copy(loaded.fleet, args.policy, args.copy).snapshots(tag=args.policy)
    except (SecretUnavailable, ResticError) as exc:
        raise BackupFailed(f"backup {args.policy}: copy {args.copy}: {exc}") from None
    verdicts: dict[str, dict[str, str]] | None = None
    if ledger is not None:
        entries = ledger.entries(loaded.fleet, args.policy, args.copy)
        verdicts = {args.policy: {e.snapshot_id: e.verdict for e in entries}}
    _print_snapshots(args, loaded, {args.policy: listed}, verdicts, args.copy)
    return exit_codes.OK


def _print_snapshots(
    args: argparse.Namespace,
    loaded: LoadedFleet,
    rows: dict[str, list[Snapshot]],
    verdicts: dict[str, dict[str, str]] | None,
    copy: str | None = None,
) -> None:
    if args.output == "json":
        print(json.dumps(snapshots_json(loaded, rows, verdicts, copy), indent=2))
    else:
        print(render_snapshots(loaded, rows, verdicts, copy), end="")


def _require_copy(loaded: LoadedFleet, args: argparse.Namespace) -> None:
    require_policy(loaded, args.policy)
    copies = loaded.fleet.backups[args.policy].copies
    if args.copy is not None and args.copy not in copies:
        known = ", ".join(sorted(copies)) or "none"
        raise UnknownPolicy(f"backup {args.policy} has no copy {args.copy!r}; its copies: {known}")
    if args.copy is not None and args.action not in {"list", "copy", "check", "drill", "restore"}:
        raise UsageError(f"reconcile backup {args.action} takes no --copy")
    if args.action == "copy" and not copies:
        raise Refused(f"backup {args.policy} has no copies: add `copies:` to the policy")


def _copy(args: argparse.Namespace, loaded: LoadedFleet, ledger: Ledger) -> int:
    """Fill the policy's copies now, each a P3 `backup_copied` or a P1 when it failed."""

    bus = _event_bus(args)
    names = [args.copy] if args.copy else sorted(loaded.fleet.backups[args.policy].copies)
    failed = 0
    for copy in names:
        report(f"backup {args.policy}: copying the recorded snapshots to copy {copy}")
        message, ok = copied(loaded, args.policy, copy, bus, ledger)
        print(message)
        failed += not ok
    return exit_codes.ERROR if failed else exit_codes.OK


def _event_bus(args: argparse.Namespace) -> EventBus:
    bus = EventBus()
    bus.subscribe(journal_sink(Journal(args.journal)))
    bus.subscribe(log_sink())
    return bus


def _rotate(args: argparse.Namespace, loaded: LoadedFleet) -> int:

    require_policy(loaded, args.policy)
    policy = loaded.fleet.backups[args.policy]
    old_password = args.old_password
    if old_password is not None and not re.fullmatch(SECRET_REF_PATTERN, old_password):
        raise UsageError("--old-password: expected a reference, env:NAME or file:/absolute/path")
    restic = (
        f"\n  ~ add a restic key for the state file's password ({policy.password}), give it to "
        f"{policy.host}, and remove the key {old_password} opens"
        if old_password
        else "\n    (the restic password is kept: rotate it with --old-password REF)"
    )
    print(
        f"Rotate plan:\n  ~ replace the key {policy.host} uses for backup {args.policy}, and "
        f"revoke the old one on its repository host{restic}\n    (snapshots are not touched)",
        flush=True,
    )
    confirm(args.yes)
    done = rotate_key(loaded, args.policy, args.journal.parent, report, old_password)
    print(
        f"backup {args.policy}: key rotated: {done.new} deployed to {policy.host}; "
        f"{done.old or 'no earlier key'} revoked"
    )
    if done.restic_new is not None:
        print(
            f"backup {args.policy}: restic key {done.restic_new} opens the repository; "
            f"{done.restic_old or 'no older key'} removed"
        )
    return exit_codes.OK


def _restore(args: argparse.Namespace, loaded: LoadedFleet, ledger: Ledger) -> int:
    host, _, path = (args.to or "").partition(":")
    try:
        check_path(path)
    except ValueError as exc:
        raise UsageError(f"reconcile backup restore --to HOST:/absolute/path: {exc}") from None
    if not host:
        raise UsageError("reconcile backup restore needs --to HOST:/absolute/path")
    snap, copy = pick_snapshot(loaded, args.policy, args.snapshot, ledger, args.copy)
    print(restore_plan(args.policy, snap, host, path, copy, args.copy), end="", flush=True)
    confirm(args.yes)
    started = time.monotonic()
    count = restore_to_host(loaded, args.policy, snap, host, path, report, copy)
    print(
        f"Restored {count} files of snapshot {snap.short_id} into {host}:{path} "
        f"in {time.monotonic() - started:.1f}s."
    )
    return exit_codes.OK


def _verify(args: argparse.Namespace, loaded: LoadedFleet, ledger: Ledger) -> int:
    """`backup check` and `backup drill`: the verdict becomes an event (P1 when it fails)."""

    require_policy(loaded, args.policy)
    bus = _event_bus(args)
    what = f"backup {args.policy}" + (f" copy {args.copy}" if args.copy else "")
    if args.action == "check":
        subset = args.subset or rotating_subset()
        report(f"{what}: restic check --read-data-subset={subset}")
        error = checked(loaded, args.policy, bus, subset, args.copy)
        if args.output == "json":
            verdict = {"ok": error is None, "subset": subset, "error": error}
            print(json.dumps({"policy": args.policy, "copy": args.copy, **verdict}, indent=2))
        elif error is None:
            print(f"{what}: repository check ({subset} of the data) ok")
        else:
            print(f"{what}: repository check FAILED: {error}")
        return exit_codes.OK if error is None else exit_codes.ERROR
    result, message = drilled(loaded, args.policy, bus, ledger, args.copy)
    if args.output == "json":
        print(json.dumps({"copy": args.copy, "ok": result.ok, **asdict(result)}, indent=2))
    else:
        print(message)
        for problem in result.problems:
            print(f"  problem: {problem}")
    return exit_codes.OK if result.ok else exit_codes.ERROR
