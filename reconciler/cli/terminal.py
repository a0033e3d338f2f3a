"""Talking to the person at the terminal: progress lines, the progress bar, confirmation."""

from __future__ import annotations

import sys
import time

from reconciler.errors import UsageError


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
    """One timestamped progress line on stderr (stdout carries the plan and summary)."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def progress_bar(model: str, done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else 0
    percent = f"{100 * done // total:3d}%" if total else "   "
    return f"  pulling {model:<20} [{'#' * filled}{'.' * (width - filled)}] {percent}"


def show_progress(model: str, done: int, total: int) -> None:
    """A model pull's progress bar, on a terminal only."""
    if sys.stderr.isatty():
        end = "\n" if total and done >= total else ""
        print("\r" + progress_bar(model, done, total), end=end, file=sys.stderr, flush=True)
