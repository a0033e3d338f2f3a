"""`reconcile completion bash|zsh`: a completion script for every verb and flag,
generated from the parser itself (shtab), so it never falls behind the CLI.

    reconcile completion bash > /etc/bash_completion.d/reconcile
    reconcile completion zsh > "${fpath[1]}/_reconcile"
"""

from __future__ import annotations

import argparse

import shtab

from reconciler.cli import exit_codes
from reconciler.cli.parser import completion_parser


def cmd_completion(args: argparse.Namespace) -> int:
    print(shtab.complete(completion_parser(), shell=args.shell), end="")
    return exit_codes.OK
