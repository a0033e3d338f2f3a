"""`reconcile doctor`: clean on a controller that has what it needs, then one line naming
each thing taken away (a tool, a key file's mode, a host key, a secret), exit 1."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.cli import exit_codes
from reconciler.cli.doctor_command import REQUIRED_TOOLS
from reconciler.cli.main import main
from tests.json_schemas import check
from tests.spec_text import backup_policy

STATE = """\
version: 1
hosts:
  kimi:
    address: 198.18.0.11
    ssh_key: KEY
    ssh_known_hosts: KNOWN
services:
  agent:
    host: kimi
    unit: {description: agent, exec_start: /usr/bin/true}
backups:
""" + backup_policy("db", "kimi", "/srv/restic/db", "env:FLEET_DOCTOR_PASSWORD")


@pytest.fixture
def controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    home = tmp_path / "var"
    home.mkdir(mode=0o700)
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    public = (tmp_path / "id_ed25519.pub").read_text().split()
    known.write_text(f"198.18.0.11 {public[0]} {public[1]}\n")
    state = tmp_path / "fleet.yaml"
    state.write_text(STATE.replace("KEY", str(key)).replace("KNOWN", str(known)))
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in (*REQUIRED_TOOLS, "ssh-keygen"):
        found = shutil.which(name)
        assert found, name
        (tools / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setenv("FLEET_DOCTOR_PASSWORD", "x")
    return {"state": state, "journal": home / "journal.db", "key": key, "bin": tools}


def doctor(
    paths: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, dict[str, object]]]:
    code = main(["doctor", str(paths["state"]), "--journal", str(paths["journal"]), "-o", "json"])
    checks = json.loads(capsys.readouterr().out)
    check("doctor", checks)  # against reconciler/cli/schemas
    return code, {c["name"]: c for c in checks}


def failed(checks: dict[str, dict[str, object]]) -> set[str]:
    return {n for n, c in checks.items() if not c["ok"] and not c["warning"] and n != "clock"}


def test_clean_then_each_problem_named(
    controller: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, checks = doctor(controller, capsys)
    assert failed(checks) == set(), checks
    assert checks["host key of kimi"]["ok"] and checks["secrets"]["ok"]
    assert code in (exit_codes.OK, exit_codes.ERROR)  # ERROR only for an unsynchronised clock
    assert code == exit_codes.OK or not checks["clock"]["ok"]

    (controller["bin"] / "restic").unlink()
    controller["key"].chmod(0o644)
    monkeypatch.delenv("FLEET_DOCTOR_PASSWORD")
    code, checks = doctor(controller, capsys)
    assert code == exit_codes.ERROR
    assert failed(checks) == {"tool restic", f"ssh key {controller['key']}", "secret"}
    assert "not found on PATH" in str(checks["tool restic"]["detail"])
    assert "is mode 0644: others may read it" in str(
        checks[f"ssh key {controller['key']}"]["detail"]
    )
    assert "FLEET_DOCTOR_PASSWORD is not set" in str(checks["secret"]["detail"])


def test_a_host_key_missing_and_a_loose_state_directory(
    controller: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    known = Path(str(controller["state"].read_text()).split("ssh_known_hosts: ")[1].split()[0])
    known.write_text("")
    controller["journal"].parent.chmod(0o755)
    _, checks = doctor(controller, capsys)
    assert failed(checks) == {"host key of kimi", "state directory"}
    assert "no key for 198.18.0.11" in str(checks["host key of kimi"]["detail"])
    assert "group or others may read it" in str(checks["state directory"]["detail"])
