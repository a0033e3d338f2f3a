"""Scalar types shared by the spec models: durations, names, addresses, paths, URLs.

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
import string
import subprocess
import unicodedata
from datetime import timedelta
from functools import lru_cache
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

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

_LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
LoginName = Annotated[
    str,
    StringConstraints(pattern=_LOGIN.pattern),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _LOGIN.pattern,
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


def check_url_template(value: str, allowed: frozenset[str] = frozenset({"address"})) -> str:
    """An absolute http(s) URL whose only `{placeholders}` are the allowed names."""
    check_line(value)
    try:
        fields = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(f"expected a URL whose braces are placeholders: {exc}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            known = ", ".join("{" + n + "}" for n in sorted(allowed)) or "none"
            raise ValueError(f"unknown placeholder {{{name}}}; known: {known}")
    sample = value.format(**{n: "198.18.0.1" for n in allowed})
    parts = urlsplit(sample)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("expected an absolute http:// or https:// URL")
    if "@" in parts.netloc:
        raise ValueError(CREDENTIAL_IN_URL.format(where="user:password@ in it"))
    if any(_CREDENTIAL_NAME.search(name) for name, _ in parse_qsl(parts.query, True)):
        raise ValueError(CREDENTIAL_IN_URL.format(where="a credential in its query"))
    if _BOT_TOKEN.search(parts.path):
        raise ValueError(CREDENTIAL_IN_URL.format(where="a bot token in its path"))
    return value


CREDENTIAL_IN_URL = (
    "expected a URL without credentials, found {where}: a reviewed, committed file holds "
    "no secret; give it as a token reference (env:NAME or file:/path)"
)
_CREDENTIAL_NAME = re.compile(r"(?i)token|secret|passw|key|auth|sig|credential")
_BOT_TOKEN = re.compile(r"/bot\d+:[A-Za-z0-9_-]+", re.ASCII)


UrlTemplate = Annotated[
    str,
    AfterValidator(check_url_template),
    WithJsonSchema(
        {
            "type": "string",
            "description": "http(s) URL; {address} is the host's address.",
            "examples": ["http://{address}:11434"],
        }
    ),
]
HttpUrl = Annotated[
    str,
    AfterValidator(lambda v: check_url_template(v, frozenset())),
    WithJsonSchema({"type": "string", "format": "uri", "examples": ["http://198.18.0.12:3000"]}),
]


def check_git_url(value: str) -> str:
    """Where the desired state's repository is: https://, http://, ssh:// or file:///,
    with no credentials in it (they are references: `token`, `ssh_key`) and no other
    git transport (`ext::` runs a program)."""
    check_line(value)
    parts = urlsplit(value)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError("expected file:///absolute/path")
        return value
    if parts.scheme not in {"https", "http", "ssh"} or not parts.hostname:
        raise ValueError("expected an https://, http://, ssh:// or file:/// URL")
    if parts.password is not None or (parts.scheme != "ssh" and "@" in parts.netloc):
        raise ValueError(CREDENTIAL_IN_URL.format(where="credentials in it"))
    if parts.query or parts.fragment:
        raise ValueError("expected a URL without a query or a fragment")
    return value


GitUrl = Annotated[
    str,
    AfterValidator(check_git_url),
    WithJsonSchema(
        {
            "type": "string",
            "description": "git URL: https://, http://, ssh:// or file:///.",
            "examples": ["ssh://git@198.18.0.12:2222/ops/fleet.git"],
        }
    ),
]


def check_repo_path(value: str) -> str:
    """A file's path inside a repository: relative, without `..`."""
    check_line(value)
    parts = value.split("/")
    if value.startswith(("/", "-")) or ".." in parts or "" in parts or "." in parts:
        raise ValueError("expected a relative path inside the repository, without '..'")
    return value


RepoPath = Annotated[
    str, AfterValidator(check_repo_path), WithJsonSchema(string_schema("state/fleet.yaml"))
]
GIT_BRANCH = r"^[A-Za-z0-9_][A-Za-z0-9_/-]*(\.[A-Za-z0-9_/-]+)*$"
"""A plain branch name: no leading dash, no `..` (git's own rules forbid more)."""


SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
PGP_BEGIN, PGP_END = "-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----END PGP PUBLIC KEY BLOCK-----"
PGP_BLOCK = re.compile(f"{PGP_BEGIN}\n[\\x20-\\x7e\n]*?\n{PGP_END}\n")


def check_signing_key(value: str) -> str:
    """A commit signer's public key: one SSH public key line (`TYPE BASE64 [comment]`), or
    one ASCII-armored OpenPGP public key block. Nothing else reaches ssh-keygen or gpg."""
    text = value.strip() + "\n"
    if text.startswith("-----BEGIN PGP"):
        if not PGP_BLOCK.fullmatch(text) or text.count("-----BEGIN") != 1:
            raise ValueError("expected one ASCII-armored PGP PUBLIC KEY BLOCK")
        return text
    parts = value.split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES or "\n" in value.strip():
        raise ValueError(
            "expected an SSH public key line (ssh-ed25519 AAAA... [comment]) or an "
            "ASCII-armored PGP public key block"
        )
    if not re.fullmatch(r"[A-Za-z0-9+/]+={0,3}", parts[1]):
        raise ValueError("expected the key's base64 after its type")
    return " ".join(parts[:2])


SigningKey = Annotated[
    str,
    AfterValidator(check_signing_key),
    WithJsonSchema(
        {
            "type": "string",
            "description": "An SSH public key line, or an ASCII-armored PGP public key.",
            "examples": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... release@ops"],
        }
    ),
]


def check_source(value: str) -> str:
    """A local file relative to the state file (or absolute), or an http(s) URL."""
    check_line(value)
    if "://" in value:
        return check_url_template(value, frozenset())
    if value.startswith("-") or not value.strip():
        raise ValueError("expected a file path or an http(s) URL")
    return value


SourceRef = Annotated[
    str, AfterValidator(check_source), WithJsonSchema(string_schema("../bin/agent"))
]

_RELATIVE = re.compile(r"^[A-Za-z0-9._+@=,~-][A-Za-z0-9._+@=,~/-]*$")


def check_template_ref(value: str) -> str:
    """A file inside the state file's directory: relative, normalised, no `..`.

    Its content is shown in plans, so it must never name a file elsewhere on the
    controller (a key, a password file) that a pull request could make a plan print."""
    parts = value.split("/")
    if not _RELATIVE.fullmatch(value) or ".." in parts or "" in parts or "." in parts:
        raise ValueError(
            "expected a path relative to the state file, inside its directory "
            "(no '..', not absolute)"
        )
    return value


TemplateRef = Annotated[
    str, AfterValidator(check_template_ref), WithJsonSchema(string_schema("templates/a.toml"))
]

SFTP_URL = re.compile(r"^sftp:(?:(?P<user>[^@/:]*)@)?(?P<host>[^:/@]*):(?P<path>.*)$")
"""`sftp:[USER@]HOST:PATH`, split into its parts (each checked by `check_repository`)."""
_S3 = re.compile(r"^s3:[A-Za-z0-9][A-Za-z0-9.:_-]*(/[A-Za-z0-9._+=,~-]+)+$")
REPOSITORY_FORMS = (
    "an absolute path, sftp:[USER@]HOST:/path, rest:http(s)://HOST[:PORT]/path "
    "or s3:HOST/BUCKET[/PATH]"
)


def check_repository(value: str) -> str:
    """A restic repository location whose every part is checked: no option can hide in
    a user or host, and no other restic backend (rclone runs a program) is accepted."""
    check_line(value)
    if value.startswith("/"):
        return check_path(value)
    sftp = SFTP_URL.fullmatch(value)
    if sftp:
        user, host, path = sftp["user"], sftp["host"], sftp["path"]
        if user is not None and not _LOGIN.fullmatch(user):
            raise ValueError(f"sftp user {user!r}: expected a login name")
        if not re.fullmatch(NAME_PATTERN, host):
            check_address(host)
        check_path(path)
        return value
    if value.startswith("rest:"):
        url = value.removeprefix("rest:")
        if "@" in urlsplit(url).netloc:
            raise ValueError("put no credentials in a rest: URL")
        check_url_template(url, frozenset())
        return value
    if _S3.fullmatch(value):
        return value
    raise ValueError(f"expected {REPOSITORY_FORMS}")


COPY_FORMS = (
    "local:/path (on the controller), sftp:[USER@]HOST:/path, rest:http(s)://HOST[:PORT]/path "
    "or s3:HOST/BUCKET[/PATH]"
)


def check_copy_repository(value: str) -> str:
    """Where a policy's copy lives: like a repository, except that a plain path (the
    policy's own host, lost with it) is refused and `local:/path` is the controller's disk."""
    check_line(value)
    if value.startswith("local:"):
        check_path(value.removeprefix("local:"))
        return value
    if value.startswith("/"):
        raise ValueError(
            "a copy at a plain path would be on the policy's own host and lost with it; "
            f"expected {COPY_FORMS}"
        )
    try:
        return check_repository(value)
    except ValueError as exc:
        raise ValueError(str(exc).replace(REPOSITORY_FORMS, COPY_FORMS)) from None


CopyRepositoryUrl = Annotated[
    str,
    AfterValidator(check_copy_repository),
    WithJsonSchema(
        {
            "type": "string",
            "description": f"restic repository of a copy: {COPY_FORMS}.",
            "examples": ["local:/var/lib/fleet-reconciler/copies/kimi"],
        }
    ),
]


RepositoryUrl = Annotated[
    str,
    AfterValidator(check_repository),
    WithJsonSchema(
        {
            "type": "string",
            "description": f"restic repository: {REPOSITORY_FORMS}.",
            "examples": ["sftp:root@hermes:/srv/restic/kimi"],
        }
    ),
]
