"""Scalar types shared by the spec models: durations, secret references, names.

Each type validates its own syntax and carries its own JSON Schema, so the schema
and the README reference explain the accepted forms without extra prose.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, StringConstraints, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_PATTERN = r"^\d+(s|m|h|d)$"


def parse_duration(value: object) -> object:
    """Turn '30s', '5m', '1h' or '30d' into a timedelta; leave other values to pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError("expected a duration such as '30s', '5m', '1h' or '30d'")
        return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


def format_duration(value: timedelta) -> str:
    """Render a timedelta in the largest whole unit ('300s' -> '5m')."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["5m"]}),
]

SECRET_REF_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S+)$"  # noqa: S105 (a pattern, not a secret)
SecretRef = Annotated[
    str,
    StringConstraints(pattern=SECRET_REF_PATTERN),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SECRET_REF_PATTERN,
            "description": "A reference to a secret, never the secret itself: "
            "'env:NAME' or 'file:/absolute/path'.",
            "examples": ["env:RESTIC_PASSWORD"],
        }
    ),
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
AbsPath = Annotated[str, StringConstraints(pattern=r"^/\S*$")]
FileMode = Annotated[str, StringConstraints(pattern=r"^0?[0-7]{3}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
OllamaModelName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+$")
]
