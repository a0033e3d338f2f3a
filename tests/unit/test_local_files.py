"""Files the spec names on the controller (state.local_files): nothing is read through a
symlink that leads out of the state directory, and a refusal never tells a foreign
file's content, hash or existence."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from reconciler.cli.main import main
from tests.unit.test_spec import BASE

SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nSEKRITb3BlbnNzaC1rZXktdjEAAAA\n"
TEMPLATE = (
    '    config_files:\n      - {path: /etc/agent/agent.toml, template: "templates/agent.toml"}\n'
)


def _install(source: str, sha: str) -> str:
    return f"    install: {{kind: file, source: {source}, sha256: {sha}, dest: /usr/local/bin/agent}}\n"


def _state(tmp_path: Path, extra: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "secret.key").write_text(SECRET)
    state = tmp_path / "pr"
    state.mkdir()
    (state / "fleet.yaml").write_text(BASE.replace("    unit:\n", extra + "    unit:\n", 1))
    return state / "fleet.yaml"


def _link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _refused(spec: Path, capsys: pytest.CaptureFixture[str]) -> str:
    said = ""
    for command in (["validate"], ["--dry-run"], ["--dry-run", "--output", "json"]):
        assert main([*command, str(spec)]) == 1
        out, err = capsys.readouterr()
        said += out + err
    assert "SEKRIT" not in said and "BEGIN OPENSSH" not in said, said
    assert hashlib.sha256(SECRET.encode()).hexdigest() not in said
    return said


def test_a_symlinked_template_is_refused_and_never_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _state(tmp_path, TEMPLATE)
    _link(spec.parent / "templates" / "agent.toml", tmp_path / "secret.key")
    said = _refused(spec, capsys)
    assert "config_files.0.template: template templates/agent.toml: leads out of" in said


def test_a_symlinked_template_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _state(tmp_path, TEMPLATE)
    _link(tmp_path / "elsewhere" / "agent.toml", tmp_path / "secret.key")
    _link(spec.parent / "templates", tmp_path / "elsewhere")
    assert "leads out of the state directory" in _refused(spec, capsys)


def test_a_template_linked_to_the_environment_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVIEWER_SECRET", "SEKRITenvvalue")
    spec = _state(tmp_path, TEMPLATE)
    _link(spec.parent / "templates" / "agent.toml", Path("/proc/self/environ"))
    assert "leads out of the state directory" in _refused(spec, capsys)


def test_a_symlinked_install_source_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sha = hashlib.sha256(SECRET.encode()).hexdigest()  # even with the right hash
    spec = _state(tmp_path, _install("bin/agent", sha))
    _link(spec.parent / "bin" / "agent", tmp_path / "secret.key")
    said = _refused(spec, capsys)
    assert "install.source: bin/agent: a symlink on its path leads out of" in said


def test_a_foreign_file_s_hash_and_existence_are_not_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hash oracle: a wrong sha256 for a file outside the state directory got the
    file's real hash back; now a present and an absent file get the same words."""
    present = _refused(
        _state(tmp_path / "a", _install(str(tmp_path / "a" / "secret.key"), "a" * 64)), capsys
    )
    absent = _refused(
        _state(tmp_path / "b", _install(str(tmp_path / "b" / "nothing"), "a" * 64)), capsys
    )
    words = "not found, or not the file the sha256 pins (it is outside the state directory"
    assert words in present and words in absent


def test_links_that_stay_inside_are_fine(tmp_path: Path) -> None:
    spec = _state(
        tmp_path, TEMPLATE + _install("bin/agent", hashlib.sha256(b"#!/bin/sh\n").hexdigest())
    )
    state = spec.parent
    (state / "shared").mkdir()
    (state / "shared" / "agent.toml").write_text("name = '$service'\n")
    (state / "templates").symlink_to("shared")
    (state / "bin").mkdir()
    (state / "real-agent").write_text("#!/bin/sh\n")
    os.symlink("../real-agent", state / "bin" / "agent")
    assert main(["validate", str(spec)]) == 0
