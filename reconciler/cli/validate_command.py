"""`reconcile validate [STATE]` and `reconcile schema`: the state file checked, and the
JSON Schema editors complete it with."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from reconciler.cli import exit_codes
from reconciler.hosts.witness import witness_warning
from state.errors import SpecError, SpecProblem
from state.load import load_fleet
from state.pager_placement import pager_on_fleet
from state.schema import fleet_schema
from state.secrets import unresolved_secrets


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when valid (warnings on stderr), 1 with every problem; with `-o json`,
    one document either way: {valid, file, counts, errors, warnings}, each problem an
    object with file, line, field and message."""
    try:
        loaded = load_fleet(args.state)
    except SpecError as exc:
        if args.output != "json":
            raise
        print(json.dumps(_document(args.state, False, exc.problems, []), indent=2))
        return exit_codes.ERROR
    fleet = loaded.fleet
    warnings = [
        *unresolved_secrets(fleet, loaded.lines, str(loaded.file)),
        *pager_on_fleet(fleet, loaded.lines, str(loaded.file)),
    ]
    if (witness := witness_warning(loaded.written)) is not None:
        warnings.append(SpecProblem(str(loaded.file), None, "failover", witness))
    counts = {"hosts": len(fleet.hosts), "services": len(fleet.services)}
    counts["backup_policies"] = len(fleet.backups)
    if args.output == "json":
        print(json.dumps({**_document(args.state, True, [], warnings), **counts}, indent=2))
        return exit_codes.OK
    for problem in warnings:
        print(f"warning: {problem}", file=sys.stderr)
    print(
        f"{args.state}: valid ({counts['hosts']} hosts, {counts['services']} services, "
        f"{counts['backup_policies']} backup policies)"
    )
    return exit_codes.OK


def _document(
    file: str, valid: bool, errors: list[SpecProblem], warnings: list[SpecProblem]
) -> dict[str, Any]:
    return {
        "file": file,
        "valid": valid,
        "errors": [_problem(p) for p in errors],
        "warnings": [_problem(p) for p in warnings],
    }


def _problem(problem: SpecProblem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "field": problem.path or None,
        "message": problem.message,
    }


def cmd_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(fleet_schema(), indent=2))
    return exit_codes.OK
