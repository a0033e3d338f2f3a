"""Scalar types shared by the spec models: durations, names, numbers, addresses, paths,
login names, unit lines and calendar expressions (URLs and locations: state.url_types).

Each type validates its own syntax and carries its own JSON Schema, so the schema
and the spec reference (docs/reference.md) explain the accepted forms without extra prose. The state
file is hostile input: every string that reaches a host (a unit file, a script, a
command line) is checked here against the grammar of where it goes, so that nothing
a reviewer approves can add a directive, a command or an option.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath
import re
import shutil
import subprocess
import unicodedata
from datetime import timedelta
from functools import lru_cache
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
)


def string_schema(example: str, **extra: str) -> dict[str, object]:
    """The JSON Schema of a checked string: its type, an example, anything else given."""
    return {"type": "string", **extra, "examples": [example]}


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$", re.ASCII)  # ASCII digits alone
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_PATTERN = r"^\d+(s|m|h|d)$"
MAX_DURATION = timedelta(days=3650)


def parse_duration(value: object) -> object:
    """Turn '30s', '5m', '1h' or '30d' (or whole seconds, or a timedelta) into a timedelta
    greater than zero.

    Bounded before it is built: ten years at most, so nothing overflows a timer."""
    return _duration(value, whole=True, zero=False)


def parse_delay(value: object) -> object:
    """A duration that may be zero: systemd's "no delay" (`RandomizedDelaySec=0`)."""
    return _duration(value, whole=True, zero=True)


def _duration(value: object, whole: bool, zero: bool) -> timedelta:
    seconds: float
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if not match:
            raise ValueError("expected a duration such as '30s', '5m', '1h' or '30d'")
        seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    else:
        raise ValueError("expected a duration such as '30s', '5m', '1h' or '30d'")
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not zero):
        raise ValueError("expected a duration greater than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError("expected a duration of at most 3650d")
    if whole and seconds != int(seconds):
        raise ValueError("expected whole seconds (units and timers count in seconds)")
    return timedelta(seconds=seconds)


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

Delay = Annotated[
    timedelta,
    BeforeValidator(parse_delay),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["0s", "5m"]}),
]

_FINE_DURATION = re.compile(r"^\s*(\d+)\s*ms\s*$", re.ASCII)
FINE_DURATION_PATTERN = r"^\d+(ms|s|m|h|d)$"


def parse_fine_duration(value: object) -> object:
    """A duration that may also be written in milliseconds ('50ms'), for timings below a
    second; everywhere else (unit files, timers) durations are whole seconds."""
    if isinstance(value, str) and (match := _FINE_DURATION.fullmatch(value)):
        value = int(match[1]) / 1000
    try:
        return _duration(value, whole=False, zero=False)
    except ValueError as exc:
        raise ValueError(str(exc).replace("such as '30s'", "such as '50ms', '30s'")) from None


def format_fine_duration(value: timedelta) -> str:
    """Like format_duration, in milliseconds below whole seconds ('0.05s' -> '50ms')."""
    if value.total_seconds() % 1:
        return f"{round(value.total_seconds() * 1000)}ms"
    return format_duration(value)


FineDuration = Annotated[
    timedelta,
    BeforeValidator(parse_fine_duration),
    PlainSerializer(format_fine_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": FINE_DURATION_PATTERN, "examples": ["50ms"]}),
]

SECRET_REF_PATTERN = (
    r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/[A-Za-z0-9._+@=,:~/-]+"  # noqa: S105 (a pattern)
    r"|cred:[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}"
    r"|age:[A-Za-z0-9+/]{20,65536}={0,2})$"
)
SecretRef = Annotated[
    str,
    StringConstraints(pattern=SECRET_REF_PATTERN),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SECRET_REF_PATTERN[:-2] + r"|age-file:[A-Za-z0-9._/-]+)$",  # as written
            "description": "A reference to a secret, never the secret itself: "
            "'env:NAME', 'file:/absolute/path', 'cred:NAME' (a systemd credential of the "
            "controller's unit: LoadCredential=NAME, read from $CREDENTIALS_DIRECTORY), "
            "'age:BASE64' (the value encrypted to the controller's age identity: `reconcile "
            "secret encrypt`), or 'age-file:PATH' (an age file next to the state file).",
            "examples": ["env:RESTIC_PASSWORD"],
        }
    ),
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
FileMode = Annotated[str, StringConstraints(pattern=r"^0?[0-7]{3}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
OllamaModelName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*:[A-Za-z0-9._-]+$"),
]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
"""A TCP port: an integer 1-65535 (not a boolean, not a string)."""
Count = Annotated[int, Strict(), Field(ge=1, le=1_000_000)]

# -- strings that reach a host ----------------------------------------------------------
_PATH_CHARS = re.compile(r"^/[A-Za-z0-9._+@=,:~/-]*$")


def check_path(value: str) -> str:
    """An absolute, normalised path of plain characters: no `..`, no `//`, no spaces,
    quotes, `$`, backticks, `%` or control characters."""
    if not _PATH_CHARS.fullmatch(value):
        raise ValueError(
            "expected an absolute path of letters, digits and . _ + @ = , : ~ / - "
            "(no spaces, quotes, $, backticks or %)"
        )
    normal = posixpath.normpath(value)
    if normal != value or "/../" in f"{value}/" or value.startswith("//"):
        raise ValueError(f"expected a normalised path without '..' or '//' (like {normal!r})")
    if value.split("/")[1] in KERNEL_TREES:
        raise ValueError("expected a path outside /proc, /sys and /dev (the kernel's own)")
    return value


KERNEL_TREES = frozenset({"proc", "sys", "dev"})


AbsPath = Annotated[
    str,
    AfterValidator(check_path),
    WithJsonSchema(
        {"type": "string", "pattern": _PATH_CHARS.pattern, "examples": ["/etc/app.conf"]}
    ),
]

LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
LoginName = Annotated[
    str,
    StringConstraints(pattern=LOGIN.pattern),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": LOGIN.pattern,
            "description": "A login name.",
            "examples": ["root"],
        }
    ),
]

_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def check_address(value: str) -> str:
    """An IP address or a DNS name (RFC 1123) of a host: never an option, a word with
    `;` or `$`, an impossible IPv4 address, nor an address that is no host's (the
    unspecified address, link-local ones such as the cloud metadata service, multicast,
    broadcast)."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        ip = None
    if ip is not None:
        if why := _not_a_host(ip):
            raise ValueError(f"expected the address of a host, not {why}")
        return value
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError("expected an IP address or a DNS name (letters, digits, '-', '.')")
    if labels[-1].isdigit():  # all digits: meant as an IPv4 address, and not one
        raise ValueError(
            "expected an IP address (four numbers of 0 to 255) or a DNS name (whose last "
            "label is not all digits)"
        )
    return value


def _not_a_host(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip.is_unspecified:
        return "the unspecified address (it means every interface)"
    if ip.is_link_local:
        return "a link-local address (169.254.0.0/16, fe80::/10: cloud metadata lives there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


_OWNER_REPO = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"


def check_owner_repo(value: str) -> str:
    """A forge's `owner/name`: two plain names, so that it stays two path segments of
    the API's URL (no `..`, no third segment, no leading `.` or `-`)."""
    if not re.fullmatch(_OWNER_REPO, value, re.ASCII) or ".." in value:
        raise ValueError(
            "expected owner/name: two names of letters, digits, '_', '.', '-' (no '..')"
        )
    return value


OwnerRepo = Annotated[
    str,
    AfterValidator(check_owner_repo),
    WithJsonSchema({"type": "string", "pattern": _OWNER_REPO, "examples": ["ops/fleet"]}),
]

HostAddress = Annotated[
    str,
    AfterValidator(check_address),
    WithJsonSchema({"type": "string", "format": "hostname", "examples": ["198.18.0.11"]}),
]

_DEBIAN_PACKAGE = r"^[a-z0-9][a-z0-9+.-]+$"
AptPackage = Annotated[str, StringConstraints(pattern=_DEBIAN_PACKAGE)]
"""A Debian package name (Debian policy 5.6.1)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNTRUSTED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Unicode's control (C0, C1), format (bidi overrides such as U+202E, zero-width
characters, the byte order mark) and line/paragraph separator characters: in a unit, a
shell or a terminal they make a reviewer read one thing where the host gets another."""


def deceptive_character(value: str) -> str | None:
    """The first character of `value` that is not plain text, as U+XXXX, or None."""
    for char in value:
        if unicodedata.category(char) in _UNTRUSTED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def check_line(value: str) -> str:
    """One line of text: no newline or other control character (it would start a new
    directive in a unit file)."""
    if _CONTROL.search(value):
        raise ValueError("expected one line of text: no newline or control characters")
    if found := deceptive_character(value):
        raise ValueError(
            f"expected plain text: {found} is a control, format (bidi, zero-width) or "
            "separator character"
        )
    return value


UnitLine = Annotated[str, AfterValidator(check_line)]
"""A value written into a unit file: one line."""
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


@lru_cache(maxsize=256)
def _calendar_ok(expression: str) -> bool | None:
    """Whether systemd accepts `expression` as OnCalendar=; None when it cannot be asked."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    done = subprocess.run(
        [analyze, "calendar", "--", expression], capture_output=True, timeout=10, check=False
    )
    return done.returncode == 0


_CALENDAR_CHARS = re.compile(r"^[A-Za-z0-9 *:,./~+-]{1,100}$")


def check_calendar(value: str) -> str:
    """A systemd OnCalendar= expression, as `systemd-analyze calendar` parses it."""
    if not _CALENDAR_CHARS.fullmatch(value):
        raise ValueError("expected a systemd calendar expression such as 'hourly' or '*-*-* 02:00'")
    if _calendar_ok(value) is False:
        raise ValueError(
            f"systemd does not accept {value!r} as OnCalendar= (see 'systemd-analyze calendar')"
        )
    return value


CalendarSpec = Annotated[
    str,
    AfterValidator(check_calendar),
    WithJsonSchema(
        {"type": "string", "description": "systemd OnCalendar= expression.", "examples": ["daily"]}
    ),
]
