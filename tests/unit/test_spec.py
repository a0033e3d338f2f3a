"""The spec: valid files load; every kind of bad input is reported with file, line and field."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.cli.main import main
from state.errors import SpecError
from state.load import load_fleet
from tests.unit.helpers import load_text

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
version: 1
hosts:
  kimi:
    address: 198.18.0.11
    role: primary
  hermes:
    address: 198.18.0.12
services:
  agent:
    host: kimi
    unit:
      description: agent
      exec_start: /bin/sleep infinity
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_text(text)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("name", ["fleet.yaml", "demo.yaml"])
def test_shipped_state_files_validate(name: str) -> None:
    loaded = load_fleet(ROOT / "state" / name)
    assert {"kimi", "hermes"} <= set(loaded.fleet.hosts)
    assert loaded.fleet.failover is not None and loaded.fleet.failover.primary == "kimi"
    assert {"qwen2.5:1.5b", "llama3.2:3b"} <= set(loaded.fleet.models[0].present)


def test_base_is_valid() -> None:
    assert load_text(BASE).fleet.services["agent"].unit is not None


def test_yaml_syntax_error_names_the_line() -> None:
    assert problems(BASE + "  broken: [unclosed\n") == [
        "state/test.yaml:15: invalid YAML: expected ',' or ']', but got '<stream end>'"
    ]


def test_unknown_key_suggests_the_right_one() -> None:
    text = BASE.replace("    role: primary", "    role: primary\n    sssh_port: 22")
    assert problems(text) == [
        "state/test.yaml:6: hosts.kimi.sssh_port: unknown key; did you mean 'ssh_port'?"
    ]


def test_wrong_type_names_field_and_expectation() -> None:
    text = BASE.replace("address: 198.18.0.11", "address: 198.18.0.11\n    ssh_port: twenty")
    [problem] = problems(text)
    assert problem.startswith("state/test.yaml:5: hosts.kimi.ssh_port: expected a valid integer")
    assert "'twenty'" in problem


def test_all_errors_are_reported_at_once() -> None:
    text = BASE.replace("role: primary", "role: boss").replace(
        "exec_start: /bin/sleep infinity", ""
    )
    found = problems(text)
    assert len(found) == 2
    assert any("hosts.kimi.role" in p and ":5:" in p for p in found)
    assert any("services.agent.unit" in p and "exec_start" in p for p in found)


def test_dangling_host_reference() -> None:
    [problem] = problems(BASE.replace("    host: kimi", "    host: kimmy"))
    assert problem == (
        "state/test.yaml:10: services.agent.host: unknown host 'kimmy'; expected one of: hermes, kimi"
    )


def test_failover_same_host_twice_and_unknown_service() -> None:
    text = BASE + "failover:\n  primary: kimi\n  backup: kimi\n  services: [nope]\n"
    found = problems(text)
    assert "state/test.yaml:16: failover.backup: must differ from failover.primary" in found
    assert "state/test.yaml:17: failover.services.0: unknown service 'nope'" in found


def test_duplicate_key_is_an_error() -> None:
    text = BASE + "  agent:\n    host: hermes\n"
    assert problems(text) == ["state/test.yaml:14: services.agent: duplicate key"]


def test_backup_needs_a_secret_reference_not_a_value() -> None:
    text = (
        BASE
        + """backups:
  db:
    host: kimi
    sqlite: [/root/db.sqlite]
    schedule: hourly
    retention: {keep_daily: 7}
    rpo: 1h
    repository: /srv/restic
    password: hunter2
"""
    )
    [problem] = problems(text)
    assert problem == (
        "state/test.yaml:22: backups.db.password: "
        "expected a secret reference 'env:NAME' or 'file:/path', not a value"
    )
    assert "hunter2" not in problem  # a secret typed into the spec is never echoed


def test_bad_duration_and_config_source() -> None:
    text = BASE.replace(
        "      exec_start: /bin/sleep infinity",
        "      exec_start: /bin/sleep infinity\n      restart_sec: soon\n"
        "    config_files:\n      - path: /etc/a\n",
    )
    found = problems(text)
    assert any("services.agent.unit.restart_sec" in p and "duration" in p for p in found)
    assert any("services.agent.config_files.0" in p and "exactly one of" in p for p in found)


def test_notification_route_to_unknown_channel() -> None:
    text = (
        BASE + "notifications:\n  channels:\n    log: {kind: log}\n  routes:\n    P0: [telegram]\n"
    )
    found = problems(text)
    assert found == ["state/test.yaml:18: notifications.routes.P0.0: unknown channel 'telegram'"]


FAILOVER = "failover:\n  primary: kimi\n  backup: hermes\n  services: [agent]\n"


def test_failover_fence_must_come_before_grace() -> None:
    """The primary's copies must have stopped before the backup's start: validation
    keeps fence_after at least FENCE_MARGIN under grace."""
    found = problems(BASE + FAILOVER + "  grace: 20s\n  fence_after: 16s\n")
    assert found == [
        "state/test.yaml:19: failover.fence_after: must be at least 5s shorter than grace "
        "(20s), so that the primary has stopped its copies before the backup starts them; "
        "got 16s"
    ]
    assert load_text(BASE + FAILOVER + "  grace: 20s\n  fence_after: 15s\n").fleet.failover


def test_failover_defaults_are_the_seeds() -> None:
    failover = load_text(BASE + FAILOVER).fleet.failover
    assert failover is not None
    assert failover.grace.total_seconds() == 300 and failover.failback == "manual"
    assert failover.fence_after < failover.grace


@pytest.mark.parametrize(
    ("grace", "fence_after"), [("5m", 240), ("20s", 15), ("10s", 5), ("1h", 2880), ("9s", 4)]
)
def test_an_unset_fence_after_follows_the_grace_written(grace: str, fence_after: int) -> None:
    """`grace: 20s` alone was refused over the 4m default the user never wrote."""
    failover = load_text(BASE + FAILOVER + f"  grace: {grace}\n").fleet.failover
    assert failover is not None
    assert failover.fence_after.total_seconds() == fence_after
    assert failover.grace - failover.fence_after >= timedelta(seconds=5)


def test_a_grace_too_short_for_any_fence_is_refused_on_grace() -> None:
    assert problems(BASE + FAILOVER + "  grace: 6s\n") == [
        "state/test.yaml:18: failover.grace: must be longer than 6s: the primary's lease "
        "(fence_after, at least 1s) must lapse at least 5s before the backup starts its "
        "copies; got 6s"
    ]


def test_local_install_source_sha256_is_checked(tmp_path: Path) -> None:
    (tmp_path / "bin").write_text("hello\n")
    text = BASE.replace(
        "    unit:",
        f"    install: {{kind: file, source: bin, sha256: {'a' * 64}, dest: /usr/local/bin/x}}\n    unit:",
    )
    with pytest.raises(SpecError) as info:
        load_text(text, str(tmp_path / "fleet.yaml"))
    [problem] = info.value.problems
    assert problem.path == "services.agent.install.source" and "sha256 mismatch" in problem.message


def test_not_a_mapping() -> None:
    assert problems("- just\n- a list\n") == [
        "state/test.yaml:1: expected a mapping with 'version' and 'hosts'"
    ]


def test_cli_prints_one_line_per_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        BASE.replace("role: primary", "role: boss").replace("host: kimi", "host: nowhere")
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}:5: hosts.kimi.role:")
    bad.write_text(BASE.replace("host: kimi", "host: nowhere"))
    assert main(["--dry-run", str(bad)]) == 1
    assert (
        capsys.readouterr().err
        == f"error: {bad}:10: services.agent.host: unknown host 'nowhere'; expected one of: hermes, kimi\n"
    )


def test_cli_never_prints_a_traceback_for_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nhosts: {kimi: {address: [}\n")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "--dry-run", str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and f"{bad}:2:" in done.stderr


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/nonexistent/fleet.yaml"]) == 1
    assert "error: /nonexistent/fleet.yaml: cannot read" in capsys.readouterr().err


def test_schema_file_is_current() -> None:
    import json

    from state.schema import fleet_schema

    committed = json.loads((ROOT / "state" / "schema.json").read_text())
    assert committed == fleet_schema(), "run: reconcile schema > state/schema.json"


def test_readme_spec_reference_is_current() -> None:
    from state.docs import reference

    assert reference() in (ROOT / "docs/reference.md").read_text(), (
        "run: python -m state.docs --write docs/reference.md"
    )


def test_validate_warns_about_a_secret_it_cannot_resolve(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESTIC_PASSWORD", raising=False)
    monkeypatch.delenv("OFFSITE_PASSWORD", raising=False)
    monkeypatch.delenv("TELEGRAM_TOKEN", raising=False)
    assert main(["validate", str(ROOT / "state" / "demo.yaml")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: ")
    assert err[0].endswith(
        "backups.metrics-db.password: secret env:RESTIC_PASSWORD: "
        "environment variable RESTIC_PASSWORD is not set"
    )
    assert any(
        line.endswith(
            "backups.metrics-db.copies.offsite.password: secret env:OFFSITE_PASSWORD: "
            "environment variable OFFSITE_PASSWORD is not set"
        )
        for line in err
    ), err
    assert any(  # every secret reference, the channels' tokens too
        line.endswith(
            "notifications.channels.operator-telegram.token: secret env:TELEGRAM_TOKEN: "
            "environment variable TELEGRAM_TOKEN is not set"
        )
        for line in err
    ), err
    for name in ("RESTIC_PASSWORD", "OFFSITE_PASSWORD", "TELEGRAM_TOKEN", "GITEA_TOKEN"):
        monkeypatch.setenv(name, "x")
    assert main(["validate", str(ROOT / "state" / "demo.yaml")]) == 0
    # The demo runs its Gitea and Telegram stand-ins on hermes, as the seed runs Gitea:
    # validate says that the pager lives on the fleet it pages about.
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[2] for line in err] == [
        "notifications.channels.operator-telegram.api_url",
        "notifications.channels.incidents.url",
    ]
    assert all("is hermes, a host of this fleet" in line for line in err)


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("validate", "schema", "status", "history", "watch", "backup"):
        assert command in out


def test_a_missing_secret_is_one_clear_line_in_every_backup_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RESTIC_PASSWORD", raising=False)
    demo = str(ROOT / "state" / "demo.yaml")
    for action in (
        ["now", "metrics-db"],
        ["list"],
        ["forget", "metrics-db"],
        ["check", "metrics-db"],
    ):
        code = main(["backup", *action, "--state", demo, "--journal", str(tmp_path / "j.db")])
        err = capsys.readouterr().err
        assert code == 1, action
        assert "internal error" not in err and "Traceback" not in err, err
        assert "secret env:RESTIC_PASSWORD: environment variable RESTIC_PASSWORD is not set" in err


def test_every_default_in_the_schema_is_one_the_schema_accepts() -> None:
    """A default is shown as the state file would write it ('60s', not 'PT1M')."""
    import re
    from typing import Any

    from state.schema import fleet_schema

    checked = 0

    def walk(node: Any) -> None:
        nonlocal checked
        if isinstance(node, dict):
            if isinstance(node.get("default"), str) and "pattern" in node:
                assert re.match(node["pattern"], node["default"]), node
                checked += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(fleet_schema())
    assert checked >= 10  # the durations of the reconciler, failover and others


def test_parsing_keeps_nothing_between_files() -> None:
    """The daemon parses on every reload and the SSH worker on every apply, for months: a
    parse must leave nothing behind (a shared YAML constructor once kept every node)."""
    import gc

    from state.yaml_lines import parse_with_lines

    for _ in range(3):
        parse_with_lines(BASE)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(100):
        parse_with_lines(BASE)
    gc.collect()
    assert len(gc.get_objects()) - before < 50


def test_a_byte_order_mark_at_the_start_is_what_editors_write() -> None:
    assert load_text("\ufeff" + BASE).fleet.hosts["kimi"]


def test_a_fence_shorter_than_two_probe_intervals_is_refused() -> None:
    """The lease is renewed at every probe pass: a fence of 1s (or 0.5) would fence a
    healthy primary between two renewals."""
    found = problems(BASE + FAILOVER + "  grace: 20s\n  fence_after: 1s\n")
    assert found == [
        "state/test.yaml:19: failover.fence_after: must be at least twice "
        "reconciler.probe_interval (2s), which renews the lease, so that one late renewal "
        "never fences a healthy primary; got 1s (unset, it is 4/5 of grace)"
    ]
    assert "expected whole seconds" in problems(BASE + FAILOVER + "  fence_after: 0.5\n")[0]


def test_a_service_listed_twice_in_failover_is_refused() -> None:
    text = BASE + FAILOVER.replace("services: [agent]", "services: [agent, agent]")
    assert problems(text) == ["state/test.yaml:17: failover.services.1: 'agent' is listed twice"]


def test_no_randomized_delay_is_systemd_s_zero() -> None:
    from state.render_backup import render_timer

    policy = """\
backups:
  db:
    host: kimi
    paths: [/etc/agent]
    schedule: hourly
    randomized_delay: 0s
    retention: {keep_last: 3}
    rpo: 1h
    repository: /srv/restic
    password: env:X
"""
    fleet = load_text(BASE + policy).fleet
    assert "RandomizedDelaySec=0\n" in render_timer("db", fleet.backups["db"])
    assert "greater than zero" in problems(BASE + policy.replace("rpo: 1h", "rpo: 0s"))[0]
