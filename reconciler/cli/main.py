"""The `reconcile` entry point: the parser, dispatch, and the one place that turns
errors into output.

Exit codes (README, "Exit codes"):
  0  converged / valid
  1  error: bad spec, bad arguments, failed or not converged run
  2  --dry-run only: changes pending (an unreachable host counts as pending)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from reconciler.cli.backup_command import cmd_backup
from reconciler.cli.commands import (
    EXIT_ERROR,
    cmd_history,
    cmd_reconcile,
    cmd_schema,
    cmd_status,
    cmd_validate,
    cmd_watch,
)
from reconciler.cli.drill_command import cmd_drill
from reconciler.cli.failover_command import cmd_failback, cmd_failover
from reconciler.cli.incidents_command import cmd_incidents, cmd_notify
from reconciler.cli.secret_command import cmd_secret
from reconciler.cli.source_command import (
    cmd_accept,
    cmd_pin,
    cmd_resume,
    cmd_review,
    cmd_suspend,
    cmd_unpin,
)
from reconciler.cli.terminal import escaped_terminal
from reconciler.errors import ReconcileError, write_traceback
from state.errors import SpecError

DEFAULT_STATE = "state/fleet.yaml"
SUBCOMMANDS = {
    "validate",
    "schema",
    "status",
    "history",
    "watch",
    "backup",
    "failover",
    "failback",
    "incidents",
    "notify",
    "drill",
    "pin",
    "unpin",
    "accept",
    "suspend",
    "resume",
    "review",
    "secret",
}


def _journal_option(parser: argparse.ArgumentParser) -> None:
    from reconciler.store.journal import DEFAULT_PATH

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
        epilog=f"Subcommands: reconcile {'|'.join(sorted(SUBCOMMANDS))} (see -h of each). "
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
        "--review",
        metavar="BASE_STATE",
        help="with --dry-run: STATE is a stranger's proposal (a pull request), planned with "
        "the authority of BASE_STATE (the state in force): only its hosts are contacted, "
        "with its connection fields; only what it manages is shown; only its checks run",
    )
    main.add_argument(
        "--fresh-data",
        action="store_true",
        help="a host whose backed-up data is all missing starts without it (no rebuild "
        "from its recorded snapshot; said in the plan)",
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
    _watch_parser(
        sub.add_parser("watch", help="reconcile continuously (timer, probes, file watch)")
    )
    _backup_parser(sub.add_parser("backup", help="backup policies: list, now, check, drill, ..."))
    _move_parsers(sub)
    incidents = sub.add_parser("incidents", help="open and recent incidents; ack ID; pir ID")
    incidents.add_argument("action", nargs="?", choices=["list", "ack", "pir"], default="list")
    incidents.add_argument("id", nargs="?", help="ack, pir: the incident")
    incidents.add_argument("--output", choices=["text", "json"], default="text")
    incidents.add_argument("--limit", type=int, default=50)
    incidents.add_argument(
        "--post",
        action="store_true",
        help="pir: also add the draft as a comment on the incident's Gitea issue",
    )
    incidents.add_argument("--state", default=DEFAULT_STATE, help="state file, for --post")
    _journal_option(incidents)
    incidents.set_defaults(func=cmd_incidents)
    notify = sub.add_parser("notify", help="notify test [CHANNEL]: a test message per channel")
    notify.add_argument("action", choices=["test"])
    notify.add_argument("channel", nargs="?")
    notify.add_argument("--state", default=DEFAULT_STATE, help="state file (YAML)")
    notify.set_defaults(func=cmd_notify)
    drill = sub.add_parser(
        "drill", help="the DR test: restart, recovery, restore, channels against RTO/RPO"
    )
    drill.add_argument("state", nargs="?", default=DEFAULT_STATE)
    drill.add_argument("--output", choices=["text", "json"], default="text")
    drill.add_argument(
        "--failover",
        action="store_true",
        help="also a game day: switch the failover services over to the backup and back",
    )
    drill.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS")
    _journal_option(drill)
    drill.set_defaults(func=cmd_drill)
    _steering_parsers(sub)
    secret = sub.add_parser(
        "secret", help="age: references: init (the controller's identity), encrypt (stdin)"
    )
    secret.add_argument("action", choices=["init", "encrypt"])
    secret.add_argument(
        "--recipient", help="encrypt: to this age recipient (default: this controller's)"
    )
    secret.add_argument(
        "--file", type=Path, help="encrypt: write an age file there (for age-file:PATH)"
    )
    secret.set_defaults(func=cmd_secret)
    history = sub.add_parser("history", help="list recorded runs")
    history.add_argument("--limit", type=int, default=20)
    _journal_option(history)
    history.set_defaults(func=cmd_history)
    return main, subs


def _steering_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pin = sub.add_parser("pin", help="hold one commit of the git source as the desired state")
    pin.add_argument("commit", help="the commit's ID (abbreviated or full)")
    unpin = sub.add_parser("unpin", help="follow the git source's branch again")
    accept = sub.add_parser(
        "accept",
        help="take the git source's held tip, which does not descend from the commit in force",
    )
    accept.add_argument("commit", help="the held tip's ID (abbreviated or full)")
    suspend = sub.add_parser(
        "suspend", help="stop applying; observing, probing, paging and failover go on"
    )
    suspend.add_argument("--reason", default="suspended by hand", help="said in status and logs")
    resume = sub.add_parser("resume", help="apply again after `reconcile suspend`")
    review = sub.add_parser(
        "review", help="plan a Gitea pull request read-only; post the plan and its status"
    )
    review.add_argument("pull", type=int, metavar="PR", help="the pull request's number")
    review.add_argument("--no-post", action="store_true", help="print the plan only")
    for parser, func in (
        (review, cmd_review),
        (pin, cmd_pin),
        (unpin, cmd_unpin),
        (accept, cmd_accept),
        (suspend, cmd_suspend),
        (resume, cmd_resume),
    ):
        parser.add_argument("--state", default=DEFAULT_STATE, help="state file (YAML)")
        _journal_option(parser)
        parser.set_defaults(func=func)


def _watch_parser(watch: argparse.ArgumentParser) -> None:
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
    watch.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve the dashboard and /metrics there (off by default; e.g. 127.0.0.1:9300); "
        "also Gitea's webhook, unless --hooks is given",
    )
    watch.add_argument(
        "--hooks",
        metavar="HOST:PORT",
        help="serve Gitea's webhook (POST /hooks/gitea) there alone, on its own listener, so "
        "that the dashboard can stay on loopback (e.g. 0.0.0.0:9301)",
    )
    watch.add_argument(
        "--controller",
        metavar="NAME",
        help="this controller's name with etcd coordination (default: HOSTNAME-watch-PID)",
    )
    _journal_option(watch)
    watch.set_defaults(func=cmd_watch)


def _move_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    failover = sub.add_parser(
        "failover", help="move the failover services: --to HOST, or --accept-data-loss"
    )
    failover.add_argument("--to", metavar="HOST", help="planned switchover to HOST (zero loss)")
    failover.add_argument(
        "--accept-data-loss",
        action="store_true",
        help="let a failover held by a backup older than its RPO go ahead",
    )
    failback = sub.add_parser("failback", help="bring the failover services home (zero loss)")
    for parser, func in ((failover, cmd_failover), (failback, cmd_failback)):
        parser.add_argument("--state", default=DEFAULT_STATE, help="state file (YAML)")
        parser.add_argument("--yes", action="store_true", help="move without asking")
        parser.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS")
        _journal_option(parser)
        parser.set_defaults(func=func)


def _backup_parser(backup: argparse.ArgumentParser) -> None:
    backup.add_argument(
        "action",
        choices=["list", "now", "copy", "forget", "check", "drill", "restore", "rotate-key"],
    )
    backup.add_argument(
        "--copy",
        metavar="NAME",
        help="copy: only this copy (default: every copy); check, drill, restore: work on "
        "this copy instead of the repository",
    )
    backup.add_argument("--to", metavar="HOST:PATH", help="restore: where the files go")
    backup.add_argument("--snapshot", help="restore: snapshot id (default: the latest)")
    backup.add_argument("--yes", action="store_true", help="restore or rotate without asking")
    backup.add_argument("--subset", help="check: --read-data-subset, default a rotating n/7")
    backup.add_argument(
        "--old-password",
        metavar="REF",
        help="rotate-key: also rotate the restic key; REF (env:NAME or file:/path) refers to "
        "the password the host held, the state file's `password` to the new one",
    )
    backup.add_argument("policy", nargs="?", help="policy name (all policies for list)")
    backup.add_argument("--state", default=DEFAULT_STATE, help="state file (YAML)")
    _journal_option(backup)
    backup.set_defaults(func=cmd_backup)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    main_parser, sub_parser = build_parser()
    parser = sub_parser if argv and argv[0] in SUBCOMMANDS else main_parser
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    with escaped_terminal():
        return run_reporting_errors(lambda: func(args))


def run_reporting_errors(action: Callable[[], int]) -> int:
    """Run `action`; expected errors print one line each, unexpected ones a traceback file."""
    try:
        return action()
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _expected(exc):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        trace = write_traceback()
        print(
            f"internal error: {sys.exc_info()[1]!r}; traceback written to {trace}", file=sys.stderr
        )
        return EXIT_ERROR


def _expected(exc: Exception) -> bool:
    """Errors that carry one clear line for the user: ours, a secret that cannot be
    resolved, and restic's own failures (imported late: they pull in the spec models)."""
    from backups.restic_repo import ResticError
    from state.secrets import SecretUnavailable

    return isinstance(exc, ReconcileError | SecretUnavailable | ResticError)


if __name__ == "__main__":
    sys.exit(main())
