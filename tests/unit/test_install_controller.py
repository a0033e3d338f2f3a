"""`reconcile install-controller` refuses before anything is written, and what a person's
shell on the controller learns from the installed unit (credentials, environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.install_command import given_credentials, missing_credentials
from reconciler.cli.installed_unit import installed_unit
from reconciler.errors import Refused, UsageError
from state import secrets
from state.load import load_fleet

SPEC = """\
version: 1
hosts:
  h1: {address: 198.18.9.9, host_key_policy: trust-on-first-use}
services: {}
backups:
  data:
    host: h1
    paths: [/srv/data]
    schedule: hourly
    retention: {keep_within: 30d}
    rpo: 2h
    repository: /srv/restic/h1
    password: cred:restic-password
"""


def private(path: Path, text: str = "s3cret\n", mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_credential_file_others_may_read_is_refused(tmp_path: Path) -> None:
    loose = private(tmp_path / "pw", mode=0o644)
    with pytest.raises(Refused, match=r"mode 0644: others may read it \(expected 0600"):
        given_credentials([f"restic-password={loose}"])
    with pytest.raises(Refused, match="cannot read"):
        given_credentials([f"restic-password={tmp_path / 'absent'}"])
    with pytest.raises(Refused, match="not a regular file"):
        given_credentials([f"restic-password={tmp_path}"])
    with pytest.raises(UsageError, match="expected NAME=FILE"):
        given_credentials(["../x=/etc/passwd"])
    odd = private(tmp_path / "a,b=c d")
    with pytest.raises(UsageError, match="expected a path of letters, digits"):
        given_credentials([f"restic-password={odd}"])
    ok = private(tmp_path / "ok")
    assert given_credentials([f"restic-password={ok}"]) == {"restic-password": str(ok)}


def test_a_cred_reference_without_its_credential_is_named_with_its_line(tmp_path: Path) -> None:
    state = tmp_path / "fleet.yaml"
    state.write_text(SPEC)
    loaded = load_fleet(str(state))
    with pytest.raises(Refused) as refused:
        missing_credentials(loaded, {})
    assert str(refused.value) == (
        f"{state}:13: backups.data.password: cred:restic-password is given to the service "
        "by no --credential restic-password=FILE"
    )
    missing_credentials(loaded, {"restic-password": "/x"})  # given: no error


def test_the_installed_units_credentials_and_environment(tmp_path: Path) -> None:
    environment = private(tmp_path / "environment", "GITEA_TOKEN=t\nexport OTHER=1\n# NO=2\n")
    password = private(tmp_path / "pw", "hunter2\n")
    sealed = private(tmp_path / "sealed", mode=0o644)  # as systemd-creds writes it
    unit = tmp_path / "fleet-reconciler-watch.service"
    unit.write_text(
        "[Service]\n"
        f"EnvironmentFile=-{environment}\n"
        f"LoadCredential=restic-password:{password}\n"
        f"LoadCredentialEncrypted=telegram:{sealed}\n"
        f"LoadCredential=loose:{private(tmp_path / 'loose', mode=0o640)}\n"
    )
    found = installed_unit(unit)
    assert found is not None and installed_unit(tmp_path / "absent") is None
    assert found.environment == {"GITEA_TOKEN", "OTHER"}
    assert found.plain == {"restic-password": password, "loose": tmp_path / "loose"}
    assert set(found.credentials) == {"restic-password", "telegram", "loose"}
    assert found.problem("cred:restic-password") is None
    assert found.problem("cred:telegram") is None
    assert "no LoadCredential=absent:FILE" in (found.problem("cred:absent") or "")
    assert "mode 0640: others may read it" in (found.problem("cred:loose") or "")
    assert found.problem("env:GITEA_TOKEN") is None
    assert "set neither in its environment file nor here" in (found.problem("env:NOPE") or "")

    # A person's command outside the service reads the unit's own (plain) credential.
    try:
        secrets.use_unit_credentials(found.plain)
        assert secrets.resolve_secret("cred:restic-password").reveal() == "hunter2"
        with pytest.raises(secrets.SecretUnavailable, match="CREDENTIALS_DIRECTORY is not set"):
            secrets.resolve_secret("cred:telegram")  # encrypted for systemd alone
    finally:
        secrets.use_unit_credentials({})
