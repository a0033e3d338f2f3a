"""Talking to the person at the terminal: progress lines, the progress bar, confirmation."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import IO

from reconciler.errors import Refused, UsageError
from reconciler.untrusted.text import EscapedStream, shown


def confirm(assume_yes: bool) -> None:
    """Ask before changing anything, as `terraform apply` does; --yes skips the question."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("refusing to apply without confirmation: no terminal; pass --yes")
    answer = input("\nApply these changes? Only 'yes' is accepted: ")
    if answer.strip() != "yes":
        raise Refused("apply cancelled")


@contextlib.contextmanager
def escaped_terminal() -> Iterator[None]:
    """Inside the block, nothing printed reaches the terminal raw (reconciler.untrusted.text)."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = EscapedStream(out)
    sys.stderr = EscapedStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def report(message: str) -> None:
    """One timestamped progress line on stderr (stdout carries the plan and summary):
    one event, one line, whatever host text it carries."""
    print(f"{time.strftime('%H:%M:%S')} {shown(message)}", file=sys.stderr, flush=True)


def progress_bar(model: str, done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else 0
    percent = f"{100 * done // total:3d}%" if total else "   "
    return f"  pulling {model:<20} [{'#' * filled}{'.' * (width - filled)}] {percent}"


def show_progress(model: str, done: int, total: int) -> None:
    """A model pull's progress bar, on a terminal only."""
    if sys.stderr.isatty():
        end = "\n" if total and done >= total else ""
        raw = getattr(sys.stderr, "stream", sys.stderr)  # our own \r, past EscapedStream
        print("\r" + progress_bar(shown(model), done, total), end=end, file=raw, flush=True)


PLAN_COLOURS = {"+": "32", "~": "33", "-": "31", "!": "1;31"}  # as Terraform colours them
"""SGR colours of a plan line's mark: add green, change yellow, remove red, alert bold red."""


def wants_colour(stream: IO[str]) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (no-color.org) or TERM is dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


def coloured_plan(text: str) -> str:
    """`text` (a plan, already escaped) with each action line coloured by its mark."""
    out = []
    for line in text.splitlines(keepends=True):
        mark = line[2:3] if line.startswith("  ") and line[3:4] == " " else ""
        colour = PLAN_COLOURS.get(mark)
        out.append(f"\x1b[{colour}m{line.rstrip(chr(10))}\x1b[0m\n" if colour else line)
    return "".join(out)


def print_plan(text: str) -> None:
    """Print a plan to stdout: coloured on a terminal (its text escaped first, then the
    colours added past EscapedStream), plain otherwise."""
    raw = getattr(sys.stdout, "stream", sys.stdout)
    if not wants_colour(raw):
        print(text, end="", flush=True)
        return
    raw.write(coloured_plan(shown(text, multiline=True)))
    raw.flush()
