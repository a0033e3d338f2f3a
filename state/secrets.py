"""Resolve a secret reference (`env:NAME`, `file:/path` or `age:BASE64`) to its value,
on the controller.

The value is returned to the caller and nothing else: it never appears in an error
message, a plan, a log line or a unit file.

`age:` holds the value in the state file itself (so in git), encrypted to the
controller's age identity (`$FLEET_RECONCILER_AGE_IDENTITY`, by default
/etc/fleet-reconciler/age-identity.txt): only a machine holding that identity can read
it. It is decrypted by Debian's `age` (the reference implementation, packaged and
maintained by Debian, and no new Python dependency), the ciphertext on its stdin.
"""

from __future__ import annotations

import base64
import binascii
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from state.errors import SpecProblem, dotted
from state.spec.fleet import Fleet, spec_models
from state.types import SECRET_REF_PATTERN
from state.yaml_lines import LineMap, line_for


class Secret:
    """A resolved secret value, typed as one from where it is read to where it is used:
    it shows as ******** in every str(), repr(), f-string and traceback; `reveal()` is
    the one way to its text, called where the value is sent (a header, an env file)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(********)"

    def __str__(self) -> str:
        return "********"

    def __format__(self, spec: str) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SecretUnavailable(LookupError):
    """The reference points nowhere; the message names the reference, never a value."""


def resolve_secret(ref: str) -> Secret:
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise SecretUnavailable(f"secret {ref}: environment variable {name} is not set")
        return Secret(value)
    if kind == "file":
        try:
            return Secret(Path(name).read_text(encoding="utf-8").rstrip("\n"))
        except OSError as exc:
            raise SecretUnavailable(f"secret {ref}: cannot read {name}: {exc.strerror}") from None
    if kind == "cred":
        return _credential(ref, name)
    if kind == "age":
        return _decrypted(name)
    raise SecretUnavailable(
        f"secret {ref}: expected 'env:NAME', 'file:/path', 'cred:NAME' or 'age:BASE64'"
    )


_UNIT_CREDENTIALS: dict[str, Path] = {}


def use_unit_credentials(files: dict[str, Path]) -> None:
    """Outside the service: `cred:NAME` reads the file that the installed unit's
    `LoadCredential=NAME:FILE` names, as systemd hands it to the service. A person's
    one-shot command on the controller (`reconcile backup now`) then resolves what the
    watch resolves, with no copy of a secret made."""
    _UNIT_CREDENTIALS.clear()
    _UNIT_CREDENTIALS.update(files)


def _credential(ref: str, name: str) -> Secret:
    """A systemd credential of the controller's unit (LoadCredential=, SetCredential=,
    LoadCredentialEncrypted=): the file NAME in $CREDENTIALS_DIRECTORY, which systemd
    makes readable by the service alone; outside the service, the unit's own file
    (`use_unit_credentials`)."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory and name in _UNIT_CREDENTIALS:
        file = _UNIT_CREDENTIALS[name]
        try:
            return Secret(file.read_text(encoding="utf-8").rstrip("\n"))
        except OSError as exc:
            raise SecretUnavailable(
                f"secret {ref}: cannot read {file}, the unit's LoadCredential={name}: "
                f"({exc.strerror})"
            ) from None
    if not directory:
        raise SecretUnavailable(
            f"secret {ref}: $CREDENTIALS_DIRECTORY is not set (expected the controller to run "
            f"as a systemd service with LoadCredential={name}:...)"
        )
    if "/" in name or name.startswith("."):
        raise SecretUnavailable(f"secret {ref}: expected a credential name, not a path")
    try:
        return Secret((Path(directory) / name).read_text(encoding="utf-8").rstrip("\n"))
    except OSError as exc:
        raise SecretUnavailable(
            f"secret {ref}: no credential {name} in $CREDENTIALS_DIRECTORY ({exc.strerror})"
        ) from None


AGE_IDENTITY_ENV = "FLEET_RECONCILER_AGE_IDENTITY"
DEFAULT_AGE_IDENTITY = "/etc/fleet-reconciler/age-identity.txt"
AGE_TIMEOUT_S = 10.0


def age_identity() -> Path:
    """The controller's age identity (its private key file)."""
    return Path(os.environ.get(AGE_IDENTITY_ENV) or DEFAULT_AGE_IDENTITY)


def _decrypted(encoded: str) -> Secret:
    shown = f"secret age:{encoded[:12]}…"
    try:
        ciphertext = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SecretUnavailable(f"{shown}: expected the base64 of an age file") from None
    identity = age_identity()
    if not identity.is_file():
        raise SecretUnavailable(
            f"{shown}: no age identity at {identity} (${AGE_IDENTITY_ENV}): only the "
            "controller can decrypt it"
        )
    try:
        done = subprocess.run(
            ["age", "--decrypt", "--identity", str(identity)],
            input=ciphertext,
            capture_output=True,
            timeout=AGE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SecretUnavailable(f"{shown}: age did not run: {type(exc).__name__}") from None
    if done.returncode != 0:
        raise SecretUnavailable(
            f"{shown}: not decryptable with the identity at {identity} (encrypted to "
            "another controller, or damaged)"
        )
    try:
        return Secret(done.stdout.decode("utf-8").rstrip("\n"))
    except UnicodeDecodeError:
        raise SecretUnavailable(f"{shown}: the value is not UTF-8 text") from None


@cache
def secret_fields() -> frozenset[str]:
    """Names of the spec's fields that hold a secret reference (typed SecretRef)."""
    return frozenset(
        name
        for obj in spec_models()
        for name, info in obj.model_fields.items()
        if any(getattr(m, "pattern", None) == SECRET_REF_PATTERN for m in info.metadata)
    )


def secret_references(fleet: Fleet) -> list[tuple[tuple[str | int, ...], str]]:
    """Every secret reference of the spec, with its field path: backup and copy
    passwords, channel tokens, the git source's token, wherever a SecretRef is."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    names = secret_fields()

    def walk(value: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in names and isinstance(item, str):
                    found.append(((*path, key), item))
                else:
                    walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*path, index))

    walk(fleet.model_dump(mode="python"), ())
    return found


def unresolved_secrets(fleet: Fleet, lines: LineMap, file: str) -> list[SpecProblem]:
    """Every secret reference that does not resolve here and now, each located.

    `validate` reports these as warnings (a reviewer's machine need not hold the
    secrets); any command that needs a secret fails on it with the same line."""
    problems = []
    for path, ref in secret_references(fleet):
        try:
            resolve_secret(ref)
        except SecretUnavailable as exc:
            problems.append(SpecProblem(file, line_for(lines, path), dotted(path), str(exc)))
    return problems
