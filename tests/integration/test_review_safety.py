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


ADMIN_TOKEN = "admin-token-9c1e-never-public"


def stranger_s_proposal(lab: fleet_lab.Lab, tmp_path: Path, controller_file: Path) -> str:
    """What a stranger's pull request could hold: a service on h1 naming the host's
    secret files, a health check on an internal admin port of their choosing, h2's known
    hosts pointed at a controller file with trust on first use, and a host of their own
    (the controller's own address) reached with the controller's key."""
    spec = lab_spec(lab)
    h2 = f"address: {lab.host('h2').address}, ssh_key: {lab.ssh_key}, ssh_known_hosts: {lab.known_hosts}"
    spec = spec.replace(
        h2,
        f"address: {lab.host('h2').address}, ssh_key: {lab.ssh_key}, "
        f"ssh_known_hosts: {controller_file}, host_key_policy: trust-on-first-use",
    )
    spec = spec.replace(
        "hosts:\n",
        f"hosts:\n  mine: {{address: {lab.gateway}, ssh_key: {lab.ssh_key}, "
        f"ssh_known_hosts: {controller_file}, host_key_policy: trust-on-first-use}}\n",
        1,
    )
    stealer = """\
  stealer:
    host: h1
    unit: {description: x, exec_start: /bin/true}
    config_files:
      - {path: /root/secret-marker, content: "x\\n"}
      - {path: /etc/shadow, content: "x\\n"}
    health:
      - {kind: http, url: "http://{address}:8099/", expect_status: 599}
  mine-svc:
    host: mine
    unit: {description: x, exec_start: /bin/true}
"""
    return spec.replace("models:\n", stealer + "models:\n", 1)


def test_a_review_has_the_base_s_authority_and_learns_nothing_more(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    """`reconcile --dry-run PR --review BASE`: hosts new or changed in the proposal are
    not contacted (no controller file written, no trust on first use), files the base
    does not manage are said with their size alone, a check the base does not have is
    not run, and the journal is not written."""
    fleet_lab.ssh(lab, "h1", f"umask 077; echo {MARKER} > /root/secret-marker")
    fleet_lab.ssh(lab, "h1", f"mkdir -p /root/admin && echo {ADMIN_TOKEN} > /root/admin/index.html")
    fleet_lab.ssh(
        lab, "h1",
        "systemctl stop admin 2>/dev/null; systemd-run --unit=admin "
        "/usr/bin/python3 -m http.server 8099 --directory /root/admin",
    )  # fmt: skip
    controller_file = tmp_path / "controller-identity.txt"
    controller_file.write_text("AGE-SECRET-KEY-1STANDINFORTHECONTROLLERSAGEIDENTITY\n")
    before = controller_file.read_bytes()
    base = tmp_path / "base.yaml"
    base.write_text(lab_spec(lab))
    pr = tmp_path / "pr.yaml"
    pr.write_text(stranger_s_proposal(lab, tmp_path, controller_file))
    journal = tmp_path / "journal.db"
    run_reconcile("history", "--journal", str(journal))  # the journal exists, empty
    written = journal.read_bytes()
    said = ""
    for output in ("text", "json"):
        done = run_reconcile(
            "--dry-run", str(pr), "--review", str(base), "--journal", str(journal),
            "--output", output,
        )  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        said += done.stdout + done.stderr
    try:
        assert "Review with the authority of" in said
        assert "host mine: not contacted (new in this proposal)" in said
        assert "host h2: not contacted (its connection differs from the commit in force)" in said
        assert "stealer: http check not run in a review" in said
        assert f"a file of {len(MARKER) + 1} bytes is there (not shown in a review" in said
        assert "mode = test" in said or "agent.conf" in said  # what the base manages: as ever
        assert MARKER not in said and ADMIN_TOKEN not in said
        for line in fleet_lab.ssh(lab, "h1", "cat /etc/shadow").splitlines():
            password = line.split(":")[1]
            assert len(password) < 4 or password not in said, line
        assert controller_file.read_bytes() == before  # no host key appended
        assert journal.read_bytes() == written or _journal_rows(journal) == (0, 0)
    finally:
        fleet_lab.ssh(lab, "h1", "systemctl stop admin; rm -rf /root/admin /root/secret-marker")
    refused = run_reconcile("--review", str(base), str(pr), "--journal", str(journal))
    assert refused.returncode == 64 and "expected with --dry-run" in refused.stderr


def _journal_rows(journal: Path) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(journal) as db:
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    return int(runs), int(events)
