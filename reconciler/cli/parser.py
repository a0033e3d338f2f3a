"""The `reconcile` command line: every verb, its flags and its one-line description.

Argparse only: building the parser imports nothing else, so `reconcile -h` and a
usage error are instant. Each verb names the function that runs it as
"module:function", imported only when that verb runs (reconciler.cli.main).

One grammar: `STATE` is positional everywhere (after the verb's own words), `--state`
stays as a hidden alias; `-o/--output` and `-y/--yes` wherever they apply; usage errors
exit 64 (reconciler.cli.exit_codes), never 2, which means "changes pending".
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from reconciler.cli import exit_codes
from reconciler.cli.verbs import PLAN, VERBS
from reconciler.store.journal import DEFAULT_PATH as DEFAULT_JOURNAL

DEFAULT_STATE = "state/fleet.yaml"
STATE_SUFFIXES = (".yaml", ".yml", ".json")


class Parser(argparse.ArgumentParser):
    """Usage errors exit 64 (EX_USAGE), with the usage line and one error line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(exit_codes.USAGE, f"{self.prog}: error: {message}\n")


class UnknownCommand(Exception):
    """The first word is neither a verb nor a state file."""


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse `argv` (without the program name); exits 64 on a usage error."""
    if argv and argv[0] in VERBS:
        args = build_verbs().parse_args(argv)
        verb = VERBS[args.command]
    else:
        if argv and (refused := _not_a_state(argv[0])) is not None:
            plan_parser().error(refused)
        args = plan_parser().parse_args(argv)
        verb = PLAN
    _state_given_first(args)
    if getattr(args, "state_option", None) is not None:
        if getattr(args, "state", None) not in (None, DEFAULT_STATE):
            plan_parser().error("give the state file once: as STATE, or as --state")
        args.state = args.state_option
    if getattr(args, "state", None) is None:
        args.state = DEFAULT_STATE
    args.verb = verb
    return args


OPTIONAL_WORDS = {"backup": "policy", "incidents": "id", "notify": "channel"}


def _state_given_first(args: argparse.Namespace) -> None:
    """`reconcile backup list fleet.yaml`: a verb's optional word (POLICY, ID, CHANNEL,
    prune's PATH) that names a file, with no STATE after it, is the state file."""
    command = getattr(args, "command", "")
    word = OPTIONAL_WORDS.get(command)
    if command == "journal" and args.action == "prune":  # backup's PATH is no state file
        word = "path"
    value = getattr(args, word, None) if word else None
    if word and args.state is None and isinstance(value, str) and _looks_like_a_file(value):
        args.state, args.__dict__[word] = value, None


def _looks_like_a_file(word: str) -> bool:
    return word.endswith(STATE_SUFFIXES) or "/" in word


def _not_a_state(word: str) -> str | None:
    """Why `word`, in the state file's place, is a mistyped command rather than a file."""
    if word.startswith("-") or _looks_like_a_file(word) or Path(word).exists():
        return None
    close = difflib.get_close_matches(word, VERBS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (commands: {', '.join(VERBS)})"
    return f"unknown command '{word}'{hint}"


def plan_parser() -> Parser:
    """`reconcile [STATE] [--dry-run] ...`: plan (and apply) the desired state."""
    parser = Parser(
        prog="reconcile",
        description="Converge a fleet of Linux hosts to the desired state in STATE.",
        epilog="commands (reconcile COMMAND -h for each):\n"
        + "".join(f"  {v.name:<10} {v.summary}\n" for v in VERBS.values())
        + "\n"
        + exit_codes.table_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _state(parser)
    parser.add_argument("--version", action="store_true", help="print the versions and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    _yes(parser, "apply without asking")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="HOST[/SERVICE]",
        help="limit the run (repeatable)",
    )
    _output(parser, "the plan's format (--dry-run)")
    parser.add_argument(
        "--review",
        metavar="BASE_STATE",
        help="with --dry-run: STATE is a stranger's proposal (a pull request), planned with "
        "the authority of BASE_STATE (the state in force): only its hosts are contacted, "
        "with its connection fields; only what it manages is shown; only its checks run",
    )
    parser.add_argument(
        "--fresh-data",
        action="store_true",
        help="a host whose backed-up data is all missing starts without it (no rebuild "
        "from its recorded snapshot; said in the plan)",
    )
    _lock_timeout(parser, "how long to wait for another apply to finish (default 60)")
    _journal(parser)
    return parser


def build_verbs() -> Parser:
    """`reconcile COMMAND ...`: every verb but the plan."""
    parser = Parser(prog="reconcile")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stated: list[Parser] = []  # STATE comes after the verb's own words: added last

    def verb(name: str, state: bool = True, journal: bool = True) -> Parser:
        made: Parser = sub.add_parser(
            name, help=VERBS[name].summary, description=VERBS[name].summary
        )
        if state:
            stated.append(made)
        if journal:
            _journal(made)
        return made

    _output(verb("validate", journal=False), "the verdict's format")
    verb("schema", state=False, journal=False)
    _output(verb("status"), "the report's format")
    history = verb("history", state=False)
    history.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    _output(history, "the list's format")
    _watch(verb("watch"))
    _backup(
        sub.add_parser("backup", help=VERBS["backup"].summary, description=VERBS["backup"].summary)
    )
    _moves(verb("failover"), verb("failback"))
    _incidents(sub)
    drill = verb("drill")
    _output(drill, "the report's format")
    drill.add_argument(
        "--failover",
        action="store_true",
        help="also a game day: switch the failover services over to the backup and back",
    )
    _lock_timeout(drill, "how long to wait for another apply to finish (default 60)")
    _steering(sub, verb)
    secret = verb("secret", state=False, journal=False)
    secret.add_argument("action", choices=["init", "encrypt"])
    secret.add_argument(
        "--recipient", help="encrypt: to this age recipient (default: this controller's)"
    )
    secret.add_argument(
        "--file", type=Path, help="encrypt: write an age file there (for age-file:PATH)"
    )
    enroll = verb("enroll", journal=False)
    enroll.add_argument("host", help="the host's name in the state file")
    enroll.add_argument(
        "--user-data", metavar="FILE", help="write the user-data there (0600), not to stdout"
    )
    enroll.add_argument(
        "--replace", action="store_true", help="replace a key already known for its address"
    )
    doctor = verb("doctor")
    _output(doctor, "the checks' format")
    doctor.add_argument(
        "--hooks", action="store_true", help="also check what `watch --hooks` needs"
    )
    _install(verb("install-controller", journal=False))
    journal = verb("journal")
    journal.add_argument("action", choices=["backup", "prune"])
    journal.add_argument("path", nargs="?", metavar="PATH", help="backup: where the copy goes")
    _lock_timeout(verb("migrate-store"), "how long to wait for the leadership (default 60)")
    completion = verb("completion", state=False, journal=False)
    completion.add_argument("shell", choices=["bash", "zsh"])
    for made in stated:
        _state(made)
    return parser


def completion_parser() -> Parser:
    """One parser of every verb and of the plan's own flags, for shell completion."""
    parser = build_verbs()
    plan = plan_parser()
    for action in plan._actions:
        if action.option_strings and action.dest != "help" and action.help != argparse.SUPPRESS:
            parser._add_action(action)
    return parser


def _steering(sub: argparse._SubParsersAction[Parser], verb: Callable[..., Parser]) -> None:
    verb("pin").add_argument("commit", help="the commit's ID (abbreviated or full)")
    verb("unpin")
    verb("accept").add_argument("commit", help="the held tip's ID (abbreviated or full)")
    verb("suspend").add_argument(
        "--reason", default="suspended by hand", help="said in status and logs"
    )
    verb("resume")
    review = verb("review")
    review.add_argument("pull", type=int, metavar="PR", help="the pull request's number")
    review.add_argument("--no-post", action="store_true", help="print the plan only")
    _lock_timeout(
        review, "with etcd: how long to wait for the leadership to post (default 10)", 10.0
    )


def _watch(watch: Parser) -> None:
    for flag, kind in (("--max-passes", int), ("--max-seconds", float)):  # for tests only
        watch.add_argument(flag, type=kind, default=None, help=argparse.SUPPRESS)
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


def _install(install: Parser) -> None:
    install.add_argument(
        "--mode",
        choices=["watch", "timer"],
        default="watch",
        help="watch: `reconcile watch` as a service (default); timer: a pass every --interval",
    )
    install.add_argument("--interval", default="1min", help="timer: how often (default 1min)")
    install.add_argument(
        "--credential",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a secret as a systemd credential (LoadCredential=), read as cred:NAME; FILE "
        "0600 (repeatable)",
    )
    install.add_argument(
        "--credential-encrypted",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="the same, FILE made by `systemd-creds encrypt --name=NAME` "
        "(LoadCredentialEncrypted=; repeatable)",
    )
    install.add_argument("--http", metavar="HOST:PORT", help="the watch's --http")
    install.add_argument("--hooks", metavar="HOST:PORT", help="the watch's --hooks")
    install.add_argument(
        "--dry-run", action="store_true", help="show what pyinfra would change, change nothing"
    )


def _moves(failover: Parser, failback: Parser) -> None:
    failover.add_argument("--to", metavar="HOST", help="planned switchover to HOST (zero loss)")
    failover.add_argument(
        "--accept-data-loss",
        action="store_true",
        help="let a failover held by a backup older than its RPO go ahead",
    )
    for parser in (failover, failback):
        _yes(parser, "move without asking")
        _lock_timeout(parser, "how long to wait for another apply to finish (default 60)")


def _backup(backup: Parser) -> None:
    backup.add_argument(
        "action",
        choices=["list", "now", "copy", "forget", "check", "drill", "restore", "rotate-key"],
    )
    backup.add_argument("policy", nargs="?", help="policy name (list: every policy)")
    _state(backup)
    backup.add_argument(
        "--copy",
        metavar="NAME",
        help="copy: only this copy (default: every copy); check, drill, restore: work on "
        "this copy instead of the repository",
    )
    backup.add_argument("--to", metavar="HOST:PATH", help="restore: where the files go")
    backup.add_argument("--snapshot", help="restore: snapshot id (default: the latest)")
    _yes(backup, "restore or rotate without asking")
    backup.add_argument("--subset", help="check: --read-data-subset, default a rotating n/7")
    backup.add_argument(
        "--old-password",
        metavar="REF",
        help="rotate-key: also rotate the restic key; REF (env:NAME or file:/path) refers to "
        "the password the host held, the state file's `password` to the new one",
    )
    _output(backup, "list: the snapshots' format")
    _lock_timeout(
        backup,
        "with etcd, how long now, copy, forget, restore and rotate-key wait for the "
        "leadership before refusing, naming the leader (default 60)",
    )
    _journal(backup)


def _incidents(sub: argparse._SubParsersAction[Parser]) -> None:
    incidents = sub.add_parser(
        "incidents", help=VERBS["incidents"].summary, description=VERBS["incidents"].summary
    )
    incidents.add_argument("action", nargs="?", choices=["list", "ack", "pir"], default="list")
    incidents.add_argument("id", nargs="?", help="ack, pir: the incident")
    _state(incidents, "the state file (pir --post: where the forge is)")
    _output(incidents, "the list's format")
    incidents.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    incidents.add_argument(
        "--post",
        action="store_true",
        help="pir: also add the draft as a comment on the incident's Gitea issue",
    )
    _journal(incidents)
    notify = sub.add_parser(
        "notify", help=VERBS["notify"].summary, description=VERBS["notify"].summary
    )
    notify.add_argument("action", choices=["test"])
    notify.add_argument("channel", nargs="?", help="one channel (default: every channel)")
    _state(notify)


def _state(parser: Parser, help: str = "the state file (YAML)") -> None:
    parser.add_argument("state", nargs="?", default=None, help=f"{help}; default {DEFAULT_STATE}")
    parser.add_argument("--state", dest="state_option", default=None, help=argparse.SUPPRESS)


def _journal(parser: Parser) -> None:
    parser.add_argument(
        "--journal",
        type=Path,
        default=DEFAULT_JOURNAL,
        help=f"the run journal (SQLite), default {DEFAULT_JOURNAL}",
    )


def _output(parser: Parser, what: str) -> None:
    parser.add_argument(
        "-o", "--output", choices=["text", "json"], default="text", help=f"{what} (default text)"
    )


def _yes(parser: Parser, help: str) -> None:
    parser.add_argument("-y", "--yes", action="store_true", help=help)


def _lock_timeout(parser: Parser, help: str, default: float = 60.0) -> None:
    parser.add_argument("--lock-timeout", type=float, default=default, metavar="SECONDS", help=help)
