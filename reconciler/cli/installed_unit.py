"""What the installed watch unit hands its service: its credentials (`LoadCredential=`)
and the names its environment file defines. `reconcile doctor`, run by a person in a
shell, checks a `cred:NAME` or `env:NAME` reference as the service will see it, not as
that shell does, and a person's one-shot command reads the unit's credential files
(state.secrets.use_unit_credentials). No secret value is kept or printed here: modes
and names only."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from deploys.controller_files import UNIT_DIR, WATCH_UNIT

LOAD_CREDENTIAL = re.compile(r"^LoadCredential(Encrypted)?=([^:\s]+):(\S+)\s*$", re.MULTILINE)
ENVIRONMENT_FILE = re.compile(r"^EnvironmentFile=-?(\S+)\s*$", re.MULTILINE)
ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)


@dataclass(frozen=True)
class InstalledUnit:
    path: Path
    credentials: dict[str, Path]
    """Every `LoadCredential=` and `LoadCredentialEncrypted=`: name to file."""
    plain: dict[str, Path]
    """Those a person's command may read as they are (not encrypted for systemd)."""
    environment: frozenset[str]
    """The variable names its environment files define (their values are not kept)."""

    def problem(self, ref: str) -> str | None:
        """Why the service would not resolve `ref` (a cred: or env: reference), or None
        when it would; other kinds are not the unit's to answer (raises ValueError)."""
        kind, _, name = ref.partition(":")
        if kind == "env":
            if name in self.environment or name in os.environ:
                return None
            return f"{ref}: {name} is set neither in its environment file nor here"
        if kind != "cred":
            raise ValueError(ref)
        file = self.credentials.get(name)
        if file is None:
            return f"{ref}: {self.path} has no LoadCredential={name}:FILE"
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except OSError as exc:
            return f"{ref}: its file {file} cannot be read ({exc.strerror})"
        if mode & 0o077 and name in self.plain:  # an encrypted one is sealed for systemd
            return f"{ref}: its file {file} is mode {mode:04o}: others may read it (chmod 600)"
        return None


def installed_unit(unit: Path = Path(UNIT_DIR) / WATCH_UNIT) -> InstalledUnit | None:
    """The watch unit `reconcile install-controller` wrote, or None when there is none."""
    try:
        text = unit.read_text(encoding="utf-8")
    except OSError:
        return None
    names: set[str] = set()
    for environment_file in ENVIRONMENT_FILE.findall(text):
        try:
            names |= set(ASSIGNMENT.findall(Path(environment_file).read_text(encoding="utf-8")))
        except OSError:
            continue  # `-` in front: a missing file is no error for systemd either
    found = LOAD_CREDENTIAL.findall(text)
    credentials = {name: Path(file) for _, name, file in found}
    plain = {name: Path(file) for encrypted, name, file in found if not encrypted}
    return InstalledUnit(unit, credentials, plain, frozenset(names))
