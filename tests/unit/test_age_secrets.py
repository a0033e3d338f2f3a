"""`age:` secret references, with Debian's real `age`: encrypted by `reconcile secret
encrypt` to the controller's identity, decrypted on the controller alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from state.secrets import AGE_IDENTITY_ENV, SecretUnavailable, resolve_secret
from tests.unit.helpers import load_text
from tests.unit.test_spec import BASE

ROOT = Path(__file__).resolve().parents[2]


def reconcile(*args: str, identity: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", AGE_IDENTITY_ENV: str(identity)},
    )


@pytest.fixture
def controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    identity = tmp_path / "controller" / "age-identity.txt"
    made = reconcile("secret", "init", identity=identity)
    assert made.returncode == 0 and made.stdout.startswith("age1"), made.stderr
    assert identity.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv(AGE_IDENTITY_ENV, str(identity))
    return identity


def test_a_value_encrypted_to_the_controller_decrypts_there_alone(
    controller: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encrypted = reconcile("secret", "encrypt", identity=controller, stdin="s3cret-value\n")
    assert encrypted.returncode == 0, encrypted.stderr
    ref = encrypted.stdout.strip()
    assert ref.startswith("age:") and "s3cret" not in ref
    assert resolve_secret(ref).reveal() == "s3cret-value"
    policy = (
        "backups:\n  db:\n    host: kimi\n    paths: [/etc/agent]\n    schedule: hourly\n"
        "    retention: {keep_last: 3}\n    rpo: 1h\n    repository: /srv/restic\n"
        f"    password: {ref}\n"
    )
    assert load_text(BASE + policy).fleet.backups["db"].password == ref  # a valid reference

    other = tmp_path / "other" / "age-identity.txt"
    assert reconcile("secret", "init", identity=other).returncode == 0
    monkeypatch.setenv(AGE_IDENTITY_ENV, str(other))
    with pytest.raises(SecretUnavailable) as info:
        resolve_secret(ref)
    message = str(info.value)
    assert "not decryptable with the identity at" in message and "\n" not in message
    assert "s3cret" not in message and ref[4:] not in message
    monkeypatch.setenv(AGE_IDENTITY_ENV, str(tmp_path / "none"))
    with pytest.raises(SecretUnavailable, match="no age identity at"):
        resolve_secret(ref)


def test_validate_warns_when_it_cannot_decrypt_and_the_ref_is_checked(
    controller: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = reconcile("secret", "encrypt", identity=controller, stdin="v").stdout.strip()
    state = tmp_path / "fleet.yaml"
    state.write_text(
        BASE + "backups:\n  db:\n    host: kimi\n    paths: [/etc/agent]\n"
        "    schedule: hourly\n    retention: {keep_last: 3}\n    rpo: 1h\n"
        f"    repository: /srv/restic\n    password: {ref}\n"
    )
    monkeypatch.setenv(AGE_IDENTITY_ENV, str(tmp_path / "elsewhere"))
    assert main(["validate", str(state)]) == 0
    [warning] = [line for line in capsys.readouterr().err.splitlines() if "password" in line]
    assert "backups.db.password: secret age:" in warning and "no age identity at" in warning
    bad = state.read_text().replace(ref, "age:$(id)-not-base64-at-all")
    state.write_text(bad)
    assert main(["validate", str(state)]) == 1
    assert "backups.db.password" in capsys.readouterr().err


def test_an_age_file_next_to_the_state_file_is_read_as_its_reference(
    controller: Path, tmp_path: Path
) -> None:
    """`age-file:secrets/db.age` in a secret field: the file, inside the state directory,
    becomes the `age:` reference; a path leading out is refused with its line."""
    state_dir = tmp_path / "state"
    (state_dir / "secrets").mkdir(parents=True)
    wrote = reconcile(
        "secret", "encrypt", "--file", str(state_dir / "secrets" / "db.age"),
        identity=controller, stdin="from-a-file\n",
    )  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    assert (
        (state_dir / "secrets" / "db.age")
        .read_text()
        .startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    )
    policy = (
        "backups:\n  db:\n    host: kimi\n    paths: [/etc/agent]\n    schedule: hourly\n"
        "    retention: {keep_last: 3}\n    rpo: 1h\n    repository: /srv/restic\n"
        "    password: age-file:secrets/db.age\n"
    )
    from state.load import load_fleet

    state = state_dir / "fleet.yaml"
    state.write_text(BASE + policy)
    ref = load_fleet(state).fleet.backups["db"].password
    assert ref.startswith("age:") and resolve_secret(ref).reveal() == "from-a-file"
    state.write_text(BASE + policy.replace("secrets/db.age", "../../etc/shadow"))
    from state.errors import SpecError

    with pytest.raises(SpecError) as info:
        load_fleet(state)
    [problem] = info.value.problems
    assert problem.path == "backups.db.password" and problem.line is not None
    assert "leads out of the state directory" in problem.message
