"""Errors raised while reading a state file.

A `SpecError` carries every problem found, so a user fixes them all in one pass.
It subclasses ValueError: a bad spec is bad input, never a crash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dotted(path: tuple[str | int, ...] | tuple[object, ...]) -> str:
    """A field path for messages, `services.ollama.port`; a key that is not plain text
    (a newline, a dot, a quote) is shown quoted, so a message always stays one line."""
    return ".".join(
        str(p) if isinstance(p, int) or _PLAIN_KEY.match(str(p)) else repr(p) for p in path
    )


@dataclass(frozen=True)
class SpecProblem:
    """One problem: where it is (file, line, dotted field path) and what was expected."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(ValueError):
    """The state file is unreadable or invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
