"""The `reconcile` command line: the one place that turns results and errors into output.

Exit codes (README, "Exit codes"):
  0  converged / valid
  1  error: bad spec, bad arguments, failed run
  2  --dry-run only: changes pending (an unreachable host counts as pending)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from collections.abc import Callable

from reconciler.errors import ReconcileError
from reconciler.worker import WorkerProcess
from state.errors import SpecError

# Heavy modules (pydantic, httpx, the spec) are imported inside the commands, after the
# SSH worker has been started, so the worker's own start-up runs in parallel with ours.

DEFAULT_STATE = "state/fleet.yaml"
EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


def cmd_plan(args: argparse.Namespace) -> int:
    worker = WorkerProcess()  # first: its start-up overlaps the imports below
    import httpx

    from reconciler.plan import plan_to_json
    from reconciler.reconcile import plan_once
    from reconciler.render import render_plan
    from state.load import load_fleet

    try:
        loaded = load_fleet(args.state)
        with httpx.Client(trust_env=False) as client:
            result = plan_once(loaded, client, worker=worker)
    finally:
        worker.close()
    if args.output == "json":
        print(json.dumps(plan_to_json(result.plan), indent=2))
    else:
        print(render_plan(result.plan), end="")
    if not args.dry_run:
        print("error: apply is not available yet; use --dry-run", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_PENDING if result.plan.summary.pending else EXIT_OK


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


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """(main parser for `reconcile [--dry-run] [STATE]`, parser for the subcommands)."""
    main = argparse.ArgumentParser(
        prog="reconcile",
        description="Converge a fleet to the desired state in STATE.",
        epilog="Subcommands: reconcile validate [STATE] | reconcile schema. "
        "Exit codes: 0 converged, 1 error, 2 changes pending (--dry-run).",
    )
    main.add_argument("state", nargs="?", default=DEFAULT_STATE, help="state file (YAML)")
    main.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    main.add_argument("--output", choices=["text", "json"], default="text")
    main.set_defaults(func=cmd_plan)
    subs = argparse.ArgumentParser(prog="reconcile")
    sub = subs.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check a state file")
    validate.add_argument("state", nargs="?", default=DEFAULT_STATE)
    validate.set_defaults(func=cmd_validate)
    schema = sub.add_parser("schema", help="print the JSON Schema of the state file")
    schema.set_defaults(func=cmd_schema)
    return main, subs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    main_parser, sub_parser = build_parser()
    parser = sub_parser if argv and argv[0] in {"validate", "schema"} else main_parser
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
        with tempfile.NamedTemporaryFile(
            "w", prefix="reconcile-crash-", suffix=".txt", delete=False
        ) as out:
            traceback.print_exc(file=out)
        print(
            f"internal error: {sys.exc_info()[1]!r}; traceback written to {out.name}",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
