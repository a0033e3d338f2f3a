"""A pull request's state directory on real hosts: symlinks to the controller's secrets
are refused by `validate` and by every kind of plan, and no byte of the secret reaches
any output, the journal or a host (issue: "Review safety")."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec, run_reconcile

MARKER = "SEKRIT-controller-only-7f3a"
SECRET = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{MARKER}\n-----END OPENSSH PRIVATE KEY-----\n"


def pull_request(tmp_path: Path, lab: fleet_lab.Lab) -> Path:
    """A state directory as a pull request could make it: a symlinked template, a
    symlinked template directory and a symlinked install source, each pointing at a
    secret file of the controller's."""
    secret = tmp_path / "controller" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    state = tmp_path / "pr"
    (state / "templates").mkdir(parents=True)
    (state / "templates" / "agent.toml").symlink_to(secret)
    (state / "linked").symlink_to(secret.parent)  # a whole directory, linked
    (state / "bin").mkdir()
    (state / "bin" / "tool").symlink_to(secret)
    sha = hashlib.sha256(SECRET.encode()).hexdigest()  # the right hash does not help
    extra = f"""\
  tool:
    host: h1
    install: {{kind: file, source: bin/tool, sha256: {sha}, dest: /usr/local/bin/tool}}
    config_files:
      - {{path: /etc/tool/a.toml, template: templates/agent.toml}}
      - {{path: /etc/tool/b.toml, template: linked/id_ed25519}}
"""
    spec = lab_spec(lab).replace("models:\n", extra + "models:\n", 1)
    (state / "fleet.yaml").write_text(spec)
    return state / "fleet.yaml"


def test_a_pull_request_never_reads_the_controller_s_secrets(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec = pull_request(tmp_path, lab)
    journal = tmp_path / "journal.db"
    said = ""
    for command in (
        ["validate", str(spec)],
        ["--dry-run", str(spec), "--journal", str(journal)],
        ["--dry-run", str(spec), "--journal", str(journal), "--output", "json"],
        ["--yes", str(spec), "--journal", str(journal)],
    ):
        done = run_reconcile(*command)
        assert done.returncode == 1, done.stdout + done.stderr
        said += done.stdout + done.stderr
    assert "services.tool.install.source: bin/tool: a symlink on its path leads out" in said
    assert "config_files.0.template: template templates/agent.toml: leads out" in said
    assert "config_files.1.template: template linked/id_ed25519: leads out" in said
    assert MARKER not in said and "BEGIN OPENSSH" not in said
    assert hashlib.sha256(SECRET.encode()).hexdigest() not in said
    if journal.exists():
        assert MARKER.encode() not in journal.read_bytes()
    for host in ("h1", "h2"):
        found = fleet_lab.ssh(
            lab, host, f"grep -rls -- {MARKER} /etc /usr/local /root /var/lib 2>/dev/null; true"
        )
        assert found.strip() == "", (host, found)
        assert "no such" in fleet_lab.ssh(lab, host, "ls /etc/tool 2>&1; true").lower()
