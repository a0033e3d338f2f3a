"""Spec types for where things are: URLs with placeholders, git URLs and branches,
signing keys, state-file sources and templates, and restic repository locations. As
in state.types, each type checks its own syntax and carries its own JSON Schema.
"""

from __future__ import annotations

import re
import string
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from pydantic import AfterValidator, WithJsonSchema

from state.types import LOGIN, NAME_PATTERN, check_address, check_line, check_path, string_schema


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
        if user is not None and not LOGIN.fullmatch(user):
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
