"""The `reconcile` entry point: parse, run the verb, and the one place that turns errors
into output and exit codes (reconciler.cli.exit_codes).

The verb's module is imported only when it runs (reconciler.cli.parser names it), after
its SSH worker, if it has one, has started: `reconcile -h` and a usage error import
nothing heavy, and a plan's worker starts while the command loads the spec.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

from reconciler.cli import exit_codes
from reconciler.cli.installed_unit import installed_unit
from reconciler.cli.parser import parse
from reconciler.cli.terminal import escaped_terminal
from reconciler.cli.verbs import Verb
from reconciler.errors import ReconcileError, UsageError, write_traceback
from reconciler.hosts.client import WarmWorker, WorkerProcess
from state.errors import SpecError

Command = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if getattr(args, "version", False):
        from reconciler.cli.version import version_lines  # runs tools: only when asked

        return _printed(lambda: print("\n".join(version_lines())) or exit_codes.OK)
    with escaped_terminal():
        return _printed(lambda: run_reporting_errors(lambda: _run(args.verb, args)))


def _run(verb: Verb, args: argparse.Namespace) -> int:
    module, _, name = verb.run.partition(":")
    worker: WarmWorker | WorkerProcess | None = None
    if verb.ssh == "warm":  # kept for the whole run: plan, deploys, gate, verify share it
        worker = WarmWorker()
    elif verb.ssh == "cold":
        worker = WorkerProcess()
    args.ssh_worker = worker
    try:
        _service_credentials()
        command: Command = getattr(importlib.import_module(f"reconciler.cli.{module}"), name)
        return command(args)
    finally:
        if isinstance(worker, WarmWorker):
            worker.close(wait=False)  # about to exit: no need to watch it hang up
        elif worker is not None:
            worker.close()


def _service_credentials() -> None:
    """A person's command on the controller resolves `cred:NAME` as the installed watch
    unit does (state.secrets.use_unit_credentials); the service has its own."""
    if os.environ.get("CREDENTIALS_DIRECTORY") or (unit := installed_unit()) is None:
        return
    from state.secrets import use_unit_credentials  # start-up: pydantic after the worker

    use_unit_credentials(unit.plain)


def _printed(action: Callable[[], int]) -> int:
    """`action`, whose reader may go away (`reconcile schema | head -1`): then exit 141
    quietly, as a command killed by SIGPIPE would, instead of a crash report."""
    try:
        code = action()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail
        return exit_codes.BROKEN_PIPE


def run_reporting_errors(action: Callable[[], int]) -> int:
    """Run `action`; expected errors print one line each, unexpected ones a traceback file."""
    try:
        return action()
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exit_codes.ERROR
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except BrokenPipeError:
        raise
    except Exception as exc:
        if _expected(exc):
            print(f"error: {exc}", file=sys.stderr)
            return exit_codes.ERROR
        trace = write_traceback()
        print(
            f"internal error: {sys.exc_info()[1]!r}; traceback written to {trace}", file=sys.stderr
        )
        return exit_codes.ERROR


def _expected(exc: Exception) -> bool:
    """Errors that carry one clear line for the user: ours, a secret that cannot be
    resolved, and restic's own failures (imported late: they pull in the spec models)."""
    from backups.restic_repo import ResticError  # start-up: loads pydantic, only on error
    from state.secrets import SecretUnavailable  # start-up: loads pydantic, only on error

    return isinstance(exc, ReconcileError | SecretUnavailable | ResticError)


if __name__ == "__main__":
    sys.exit(main())
