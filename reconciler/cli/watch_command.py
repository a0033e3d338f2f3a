"""`reconcile watch [STATE]`: the daemon (reconciler.daemon.assembly), with its output on
this terminal."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.cli.terminal import report, show_progress
from reconciler.daemon.assembly import DaemonOptions, run_daemon


def cmd_watch(args: argparse.Namespace) -> int:
    options = DaemonOptions(
        state=Path(args.state),
        journal=Path(args.journal),
        controller=args.controller,
        http=args.http,
        hooks=args.hooks,
        max_passes=args.max_passes,
        max_seconds=args.max_seconds,
    )
    return run_daemon(options, report, show_progress)
