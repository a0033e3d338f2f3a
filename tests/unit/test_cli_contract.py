"""The command line's contract: exit codes CI can trust, one grammar, JSON where asked.

Usage errors exit 64 (never 2, which means "changes pending"), for every verb; a
mistyped verb is named with a suggestion, not read as a state file; `--output json`
is refused where it does not apply; a closed pipe is not a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import exit_codes
from reconciler.cli.main import main
from reconciler.cli.parser import DEFAULT_STATE, build_verbs, parse
from reconciler.cli.verbs import VERBS

ROOT = Path(__file__).resolve().parents[2]


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stopped:
        return int(stopped.code or 0)


WORDS = {  # each verb's required words, so that the flag is what is wrong
    "backup": ["list"],
    "notify": ["test"],
    "secret": ["init"],
    "completion": ["bash"],
    "journal": ["prune"],
    "enroll": ["kimi"],
    "pin": ["abc123"],
    "accept": ["abc123"],
    "review": ["7"],
}


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_bad_flag_is_a_usage_error_for_every_verb(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code([verb, *WORDS.get(verb, []), "--no-such-flag"]) == exit_codes.USAGE
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_a_bad_flag_or_value_of_the_plan_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert exit_code(["--outptu", "json"]) == exit_codes.USAGE
    assert exit_code(["--dry-run", "--output", "yaml"]) == exit_codes.USAGE
    assert exit_code(["backup", "lst"]) == exit_codes.USAGE
    assert "invalid choice: 'lst'" in capsys.readouterr().err


def test_a_mistyped_verb_is_named_with_a_suggestion_not_read_as_a_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert exit_code(["statsu"]) == exit_codes.USAGE
    assert "unknown command 'statsu'; did you mean 'status'?" in capsys.readouterr().err
    assert exit_code(["frobnicate"]) == exit_codes.USAGE
    assert "unknown command 'frobnicate' (commands: validate, schema" in capsys.readouterr().err


def test_a_missing_state_file_is_an_error_not_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "fleet.yaml"
    assert exit_code(["validate", str(missing)]) == exit_codes.ERROR
    assert str(missing) in capsys.readouterr().err


def test_json_where_it_does_not_apply_is_refused_not_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert exit_code(["backup", "now", "db", "-o", "json"]) == exit_codes.USAGE
    assert "--output json is for list, check and drill" in capsys.readouterr().err
    assert exit_code(["incidents", "ack", "x", "-o", "json"]) == exit_codes.USAGE
    assert "--output json is for `list` only" in capsys.readouterr().err


def test_state_is_positional_everywhere_and_state_is_a_hidden_alias() -> None:
    assert parse(["status"]).state == DEFAULT_STATE
    assert parse(["status", "a.yaml"]).state == "a.yaml"
    assert parse(["pin", "abc123", "a.yaml"]).state == "a.yaml"
    assert parse(["pin", "abc123", "--state", "a.yaml"]).state == "a.yaml"
    listed = parse(["backup", "list", "conf/a.yaml"])
    assert (listed.policy, listed.state) == (None, "conf/a.yaml")
    named = parse(["backup", "list", "db", "a.yaml"])
    assert (named.policy, named.state) == ("db", "a.yaml")
    assert parse(["--dry-run", "a.yaml", "-o", "json"]).output == "json"
    assert parse(["failback", "-y"]).yes
    help_text = build_verbs().format_help()
    assert all(name in help_text for name in VERBS)


def test_test_only_flags_are_hidden_from_users(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["watch", "-h"]) == exit_codes.OK
    shown = capsys.readouterr().out
    assert "--http" in shown and "--max-passes" not in shown and "--state" not in shown
    assert parse(["watch", "--max-passes", "1"]).max_passes == 1


def test_the_exit_codes_are_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["-h"]) == exit_codes.OK
    shown = capsys.readouterr().out
    for code, meaning in exit_codes.TABLE:
        assert f"  {code:<4} {meaning}" in shown


def test_version_names_ours_and_the_tools(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--version"]) == exit_codes.OK
    shown = capsys.readouterr().out
    assert shown.startswith("fleet-reconciler ")
    for tool in ("restic", "age", "git", "pyinfra"):
        assert f"  {tool} " in shown


def test_validate_as_json_locates_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("version: 1\nhosts:\n  a:\n    adress: 198.18.0.2\n")
    assert exit_code(["validate", str(bad), "-o", "json"]) == exit_codes.ERROR
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is False
    assert {
        "file": str(bad),
        "line": 4,
        "field": "hosts.a.adress",
        "message": "unknown key; did you mean 'address'?",
    } in document["errors"]


def test_history_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "journal.db"
    assert exit_code(["history", "--journal", str(journal), "-o", "json"]) == exit_codes.OK
    assert json.loads(capsys.readouterr().out) == []


def test_a_closed_pipe_is_not_a_crash(tmp_path: Path) -> None:
    """The reader is gone before the first write: exit 141, no traceback file."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "schema"],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    os.close(write)
    assert done.returncode == exit_codes.BROKEN_PIPE, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("reconcile-crash-*"))


def test_bash_completion_completes_verbs_actions_and_the_plans_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(["completion", "bash"]) == exit_codes.OK
    script = tmp_path / "reconcile.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        program = (
            f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
            f"COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; "
            '_shtab_reconcile; echo "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
        return done.stdout.split()

    assert complete("reconcile", "sta") == ["status"]
    assert complete("reconcile", "backup", "")[:3] == ["list", "now", "copy"]
    assert complete("reconcile", "--dr") == ["--dry-run"]
    assert "--max-passes" not in complete("reconcile", "watch", "--")


def test_zsh_completion_is_generated(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["completion", "zsh"]) == exit_codes.OK
    script = capsys.readouterr().out
    assert script.startswith("#compdef reconcile") and "status" in script


def test_plan_marks_are_coloured_on_a_terminal_unless_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from reconciler.cli.terminal import coloured_plan, wants_colour

    plan = "host h1\n  + unit agent.service  missing\n  ~ start agent  inactive\nPlan: 1 to add.\n"
    shown = coloured_plan(plan)
    assert "\x1b[32m  + unit agent.service  missing\x1b[0m\n" in shown
    assert "\x1b[33m  ~ start agent  inactive\x1b[0m\n" in shown
    assert shown.startswith("host h1\n") and shown.endswith("Plan: 1 to add.\n")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert wants_colour(Terminal()) and not wants_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(Terminal())
