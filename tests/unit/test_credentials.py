"""`cred:NAME`: a secret handed to the controller's unit by systemd (LoadCredential=),
read from $CREDENTIALS_DIRECTORY, never from a path the state file chooses."""

from __future__ import annotations

from pathlib import Path

import pytest

from state.errors import SpecError
from state.secrets import SecretUnavailable, resolve_secret
from tests.unit.helpers import load_text
from tests.unit.test_diff_backups import POLICY
from tests.unit.test_spec import BASE


def test_a_credential_is_read_from_the_units_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "restic-password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert resolve_secret("cred:restic-password").reveal() == "s3cret"
    with pytest.raises(SecretUnavailable, match="no credential other in"):
        resolve_secret("cred:other")


def test_without_systemd_the_error_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(SecretUnavailable, match=r"\$CREDENTIALS_DIRECTORY is not set"):
        resolve_secret("cred:restic-password")


@pytest.mark.parametrize("name", ["../etc/shadow", ".hidden", "a/b"])
def test_a_credential_name_is_never_a_path(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(SecretUnavailable, match="expected a credential name"):
        resolve_secret(f"cred:{name}")
    text = BASE + POLICY.replace("env:X", f"cred:{name}")
    with pytest.raises(SpecError):
        load_text(text)


def test_the_spec_accepts_a_credential_reference() -> None:
    text = BASE + POLICY
    assert "env:X" in text
    loaded = load_text(text.replace("env:X", "cred:restic-password"))
    assert loaded.fleet.backups["db"].password == "cred:restic-password"
