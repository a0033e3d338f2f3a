"""The `reconcile` command line: the one place that turns results and errors into output.

Exit codes (README, "Exit codes"):
  0  converged / valid
  1  error: bad spec, bad arguments, failed or not converged run
  2  --dry-run only: changes pending (an unreachable host counts as pending)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import ReconcileError, UsageError, write_traceback
from reconciler.worker import WorkerProcess
from state.errors import SpecError

if TYPE_CHECKING:
    from state.load import LoadedFleet

# Heavy modules (pydantic, httpx, the spec) are imported inside the commands, after the
# SSH worker has been started, so the worker's own start-up runs in parallel with ours.

DEFAULT_STATE = "state/fleet.yaml"
EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


def cmd_reconcile(args: argparse.Namespace) -> int:
    worker = WorkerProcess()  # first: its start-up overlaps the imports below
    try:
        from state.load import load_fleet

        loaded = load_fleet(args.state)
        if args.dry_run:
            return _dry_run(args, loaded, worker)
        return _apply(args, loaded, worker)
    finally:
        worker.close()


def _dry_run(args: argparse.Namespace, loaded: LoadedFleet, worker: WorkerProcess) -> int:
    import httpx

    from reconciler.plan import plan_to_json
    from reconciler.reconcile import plan_once
    from reconciler.render import render_plan

    with httpx.Client(trust_env=False) as client:
        plan = plan_once(loaded, client, worker=worker, targets=args.target).plan
    if args.output == "json":
        print(json.dumps(plan_to_json(plan), indent=2))
    else:
        print(render_plan(plan), end="")
    return EXIT_PENDING if plan.summary.pending else EXIT_OK


def _apply(args: argparse.Namespace, loaded: LoadedFleet, worker: WorkerProcess) -> int:
    import httpx

    from reconciler.journal import Journal
    from reconciler.lock import lock_path, state_lock
    from reconciler.plan import plan_to_json
    from reconciler.provenance import git_provenance
    from reconciler.reconcile import apply_plan, plan_once
    from reconciler.render import render_apply, render_plan

    journal = Journal(args.journal)
    lock = lock_path(journal.path.parent, loaded.file)
    with state_lock(lock, args.lock_timeout, report), httpx.Client(trust_env=False) as client:
        plan = plan_once(loaded, client, worker=worker, targets=args.target).plan
        print(render_plan(plan), end="", flush=True)
        commit, dirty = git_provenance(loaded.file)
        if not plan.summary.pending:
            run_id = journal.start_run(
                str(loaded.file), loaded.sha256, commit, dirty, "apply", plan_to_json(plan)
            )
            journal.finish_run(run_id, "no-changes")
            return EXIT_OK
        confirm(args.yes)
        run_id = journal.start_run(
            str(loaded.file), loaded.sha256, commit, dirty, "apply", plan_to_json(plan)
        )
        report(f"run {run_id} started; journal {journal.path}")
        try:
            result = apply_plan(
                loaded, plan, client, journal, run_id, report, show_progress, targets=args.target
            )
        except BaseException as exc:
            journal.finish_run(run_id, "crashed", f"{type(exc).__name__}: {exc}")
            raise
        errors = "; ".join(f"{h}: {o.error}" for h, o in result.hosts.items() if o.error)
        journal.finish_run(run_id, "converged" if result.converged else "failed", errors or None)
        print(render_apply(result), end="")
        return EXIT_OK if result.converged else EXIT_ERROR


def confirm(assume_yes: bool) -> None:
    """Ask before changing anything, as `terraform apply` does; --yes skips the question."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("refusing to apply without confirmation: no terminal; pass --yes")
    answer = input("\nApply these changes? Only 'yes' is accepted: ")
    if answer.strip() != "yes":
        raise UsageError("apply cancelled")


def report(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def show_progress(model: str, done: int, total: int) -> None:
    from reconciler.render import progress_bar

    if sys.stderr.isatty():
        end = "\n" if total and done >= total else ""
        print("\r" + progress_bar(model, done, total), end=end, file=sys.stderr, flush=True)


def cmd_status(args: argparse.Namespace) -> int:
    worker = WorkerProcess()
    try:
        import httpx

        from reconciler.journal import Journal
        from reconciler.reconcile import plan_once
        from reconciler.status import loop_lines, render_status
        from state.load import load_fleet

        journal = Journal(args.journal)
        try:
            loaded = load_fleet(args.state)
        except SpecError:
            # The loop keeps the last good spec; show its state, then the file's errors.
            print("\n".join(loop_lines(journal, Path(args.state))))
            raise
        with httpx.Client(trust_env=False) as client:
            result = plan_once(loaded, client, worker=worker)
        print(render_status(loaded, result.observed, result.plan, journal), end="")
        return EXIT_OK
    finally:
        worker.close()


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    import httpx

    from reconciler.events import EventBus, journal_subscriber, log_subscriber
    from reconciler.journal import Journal
    from reconciler.loop import WatchLoop, start_watchdog
    from reconciler.spec_source import SpecSource

    journal = Journal(args.journal)
    bus = EventBus()
    bus.subscribe(journal_subscriber(journal))
    bus.subscribe(log_subscriber())
    spec = SpecSource(Path(args.state), bus, journal)
    if not spec.reload() and spec.exception is not None:
        raise spec.exception  # no last good spec to fall back on at start-up
    assert spec.loaded is not None
    with httpx.Client(trust_env=False) as client:
        loop = WatchLoop(spec, journal, client, bus, report, show_progress)

        def beating_report(message: str) -> None:
            loop.beat()
            report(message)

        loop.report = beating_report
        signal.signal(signal.SIGTERM, lambda *_: loop.request_stop())
        signal.signal(signal.SIGINT, lambda *_: loop.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: loop.request_reload())
        watcher = threading.Thread(target=loop.watch_file, name="watchfiles", daemon=True)
        watcher.start()
        rtos = [s.rto.total_seconds() for s in spec.loaded.fleet.services.values()]
        start_watchdog(loop, stall_limit=2 * max(rtos, default=0) + 600)
        report(
            f"watching {args.state}: full pass every "
            f"{spec.loaded.fleet.reconciler.interval.total_seconds():g}s, probes every "
            f"{spec.loaded.fleet.reconciler.probe_interval.total_seconds():g}s"
        )
        code = loop.run(max_passes=args.max_passes, max_seconds=args.max_seconds)
        watcher.join(timeout=3)
    report("stopped")
    return code


def cmd_backup(args: argparse.Namespace) -> int:
    from reconciler.backup_commands import (
        apply_retention,
        backup_now,
        list_snapshots,
        render_snapshots,
    )
    from reconciler.journal import Journal
    from state.load import load_fleet

    loaded = load_fleet(args.state)
    if args.action == "list":
        names = [args.policy] if args.policy else sorted(loaded.fleet.backups)
        print(render_snapshots(loaded, {n: list_snapshots(loaded, n) for n in names}), end="")
        return EXIT_OK
    if not args.policy:
        raise UsageError(f"reconcile backup {args.action} needs a POLICY")
    if args.action == "forget":
        kept = apply_retention(loaded, args.policy)
        print(render_snapshots(loaded, {args.policy: kept}), end="")
        return EXIT_OK
    if args.action in {"check", "drill"}:
        return _backup_verify(args, loaded)
    if args.action == "restore":
        return _backup_restore(args, loaded)
    journal = Journal(args.journal)
    started = time.monotonic()
    snapshot = backup_now(loaded, args.policy, journal, report)
    print(
        f"backup {args.policy}: snapshot {snapshot.short_id} at {snapshot.time:%Y-%m-%d %H:%M:%S} "
        f"({time.monotonic() - started:.1f}s)"
    )
    return EXIT_OK


def _backup_restore(args: argparse.Namespace, loaded: LoadedFleet) -> int:
    from reconciler.backup_commands import pick_snapshot, restore_plan, restore_to_host

    host, _, path = (args.to or "").partition(":")
    if not host or not path.startswith("/"):
        raise UsageError("reconcile backup restore needs --to HOST:/absolute/path")
    snap = pick_snapshot(loaded, args.policy, args.snapshot)
    print(restore_plan(args.policy, snap, host, path), end="", flush=True)
    confirm(args.yes)
    started = time.monotonic()
    count = restore_to_host(loaded, args.policy, snap, host, path, report)
    print(
        f"Restored {count} files of snapshot {snap.short_id} into {host}:{path} "
        f"in {time.monotonic() - started:.1f}s."
    )
    return EXIT_OK


def _backup_verify(args: argparse.Namespace, loaded: LoadedFleet) -> int:
    """`backup check` and `backup drill`: the verdict becomes an event (P1 when it fails)."""
    from reconciler.backup_commands import require_policy
    from reconciler.backup_schedule import checked, drilled
    from reconciler.drill import rotating_subset
    from reconciler.events import EventBus, journal_subscriber, log_subscriber
    from reconciler.journal import Journal

    require_policy(loaded, args.policy)
    bus = EventBus()
    bus.subscribe(journal_subscriber(Journal(args.journal)))
    bus.subscribe(log_subscriber())
    if args.action == "check":
        subset = args.subset or rotating_subset()
        report(f"backup {args.policy}: restic check --read-data-subset={subset}")
        error = checked(loaded, args.policy, bus, subset)
        if error is None:
            print(f"backup {args.policy}: repository check ({subset} of the data) ok")
            return EXIT_OK
        print(f"backup {args.policy}: repository check FAILED: {error}")
        return EXIT_ERROR
    result, message = drilled(loaded, args.policy, bus)
    print(message)
    for problem in result.problems:
        print(f"  problem: {problem}")
    return EXIT_OK if result.ok else EXIT_ERROR


def cmd_history(args: argparse.Namespace) -> int:
    from reconciler.journal import Journal
    from reconciler.status import render_history

    print(render_history(Journal(args.journal).runs(args.limit)), end="")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from state.load import load_fleet

    loaded = load_fleet(args.state)
    fleet = loaded.fleet
    print(
        f"{args.state}: valid ({len(fleet.hosts)} hosts, {len(fleet.services)} services, "
        f"{len(fleet.backups)} backup policies)"
    )
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from state.schema import fleet_schema

    print(json.dumps(fleet_schema(), indent=2))
    return EXIT_OK


SUBCOMMANDS = {"validate", "schema", "status", "history", "watch", "backup"}


def _journal_option(parser: argparse.ArgumentParser) -> None:
    from reconciler.journal import DEFAULT_PATH

    parser.add_argument(
        "--journal",
        type=Path,
        default=DEFAULT_PATH,
        help=f"run journal (SQLite), default {DEFAULT_PATH}",
    )


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """(main parser for `reconcile [--dry-run] [STATE]`, parser for the subcommands)."""
    main = argparse.ArgumentParser(
        prog="reconcile",
        description="Converge a fleet to the desired state in STATE.",
        epilog="Subcommands: reconcile validate|schema|status|history (see -h of each). "
        "Exit codes: 0 converged, 1 error or not converged, 2 changes pending (--dry-run).",
    )
    main.add_argument("state", nargs="?", default=DEFAULT_STATE, help="state file (YAML)")
    main.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    main.add_argument("--yes", action="store_true", help="apply without asking")
    main.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="HOST[/SERVICE]",
        help="limit the run (repeatable)",
    )
    main.add_argument(
        "--output", choices=["text", "json"], default="text", help="plan format for --dry-run"
    )
    main.add_argument(
        "--lock-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another apply to finish (default 60)",
    )
    _journal_option(main)
    main.set_defaults(func=cmd_reconcile)
    subs = argparse.ArgumentParser(prog="reconcile")
    sub = subs.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check a state file")
    validate.add_argument("state", nargs="?", default=DEFAULT_STATE)
    validate.set_defaults(func=cmd_validate)
    schema = sub.add_parser("schema", help="print the JSON Schema of the state file")
    schema.set_defaults(func=cmd_schema)
    status = sub.add_parser("status", help="desired versus observed, health, last change")
    status.add_argument("state", nargs="?", default=DEFAULT_STATE)
    _journal_option(status)
    status.set_defaults(func=cmd_status)
    watch = sub.add_parser("watch", help="reconcile continuously (timer, probes, file watch)")
    watch.add_argument("state", nargs="?", default=DEFAULT_STATE)
    watch.add_argument(
        "--max-passes",
        type=int,
        default=None,
        help="stop after N reconcile passes (for tests and benchmarks)",
    )
    watch.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop after S seconds (for tests and benchmarks)",
    )
    _journal_option(watch)
    watch.set_defaults(func=cmd_watch)
    backup = sub.add_parser("backup", help="backup policies: list snapshots, back up now")
    backup.add_argument("action", choices=["list", "now", "forget", "check", "drill", "restore"])
    backup.add_argument("--to", metavar="HOST:PATH", help="restore: where the files go")
    backup.add_argument("--snapshot", help="restore: snapshot id (default: the latest)")
    backup.add_argument("--yes", action="store_true", help="restore without asking")
    backup.add_argument("--subset", help="check: --read-data-subset, default a rotating n/7")
    backup.add_argument("policy", nargs="?", help="policy name (all policies for list)")
    backup.add_argument("--state", default=DEFAULT_STATE, help="state file (YAML)")
    _journal_option(backup)
    backup.set_defaults(func=cmd_backup)
    history = sub.add_parser("history", help="list recorded runs")
    history.add_argument("--limit", type=int, default=20)
    _journal_option(history)
    history.set_defaults(func=cmd_history)
    return main, subs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    main_parser, sub_parser = build_parser()
    parser = sub_parser if argv and argv[0] in SUBCOMMANDS else main_parser
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return run_reporting_errors(lambda: func(args))


def run_reporting_errors(action: Callable[[], int]) -> int:
    """Run `action`; expected errors print one line each, unexpected ones a traceback file."""
    try:
        return action()
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    except ReconcileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        trace = write_traceback()
        print(
            f"internal error: {sys.exc_info()[1]!r}; traceback written to {trace}", file=sys.stderr
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
