"""Property tests: no value the spec accepts can break the unit or script it is rendered into.

For every generated string that survives validation, the rendered unit file is parsed
back with a systemd-style parser and must have exactly the directives we meant, with
the values the user wrote; the backup script's restic line splits back (as the shell
splits it) into exactly the arguments we meant.
"""

from __future__ import annotations

import re
import shlex
from datetime import timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from state.render import render_unit
from state.render_backup import render_script
from state.repository import RepositoryTarget
from state.spec.backups import BackupPolicy, Retention
from state.spec.services import Unit

SPECIAL = "ab $()`;|&'\"\\%=#[]{}*?~!<>-/.:@,+"
CONTROL = "\n\r\t\x00\x1b\x7f"
ONE_LINE = st.text(alphabet=st.sampled_from(SPECIAL), max_size=24)
HOSTILE = st.text(alphabet=st.sampled_from(SPECIAL + CONTROL), max_size=24)
PATH_PART = st.text(
    alphabet=st.sampled_from("abz09._-+@=,:~" + "$`; '\"\\%"), min_size=1, max_size=12
)


def parse_unit(text: str) -> list[tuple[str, str, str]]:
    """(section, key, raw value) per directive, as systemd reads a unit file (no line
    continuations are rendered, so a trailing backslash would be a bug too)."""
    section, found = "", []
    for line in text.splitlines():
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line!r}"
        found.append((section, key.strip(), value.strip()))
    return found


def unquote_environment(raw: str) -> tuple[str, str]:
    """One `Environment="K=V"` value per systemd's C-style unquoting, then specifiers."""
    assert raw.startswith('"') and raw.endswith('"') and len(raw) >= 2, raw
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != '"', f"unescaped quote in {raw!r}"
            out.append(body[i])
            i += 1
    key, _, value = "".join(out).partition("=")
    return key, unspecify(value)


def unspecify(value: str) -> str:
    """systemd's specifier expansion, for text we wrote: only `%%` may appear."""
    assert not re.search(r"%(?!%)", value.replace("%%", "")), value
    return value.replace("%%", "%")


def unit_or_none(**fields: object) -> Unit | None:
    try:
        return Unit(**fields)  # fields as a YAML file gives them
    except ValidationError:
        return None


@settings(max_examples=300, deadline=None)
@given(description=ONE_LINE, value=ONE_LINE, exec_arg=ONE_LINE)
def test_unit_values_never_add_or_change_a_directive(
    description: str, value: str, exec_arg: str
) -> None:
    unit = unit_or_none(
        description=description,
        exec_start=f"/usr/bin/agent {exec_arg}",
        environment={"AGENT": value},
    )
    assert unit is not None  # one line of any text is accepted...
    directives = parse_unit(render_unit(unit))
    keys = [(s, k) for s, k, _ in directives]
    assert keys == [
        ("Unit", "Description"),
        ("Unit", "After"),
        ("Service", "ExecStart"),
        ("Service", "User"),
        ("Service", "Environment"),
        ("Service", "Restart"),
        ("Service", "RestartSec"),
        ("Install", "WantedBy"),
    ]
    values = {k: v for _, k, v in directives}
    assert unspecify(values["Description"]) == description.strip()
    assert unquote_environment(values["Environment"]) == ("AGENT", value)
    assert values["ExecStart"] == f"/usr/bin/agent {exec_arg}".strip()


@settings(max_examples=300, deadline=None)
@given(text=HOSTILE)
def test_a_unit_string_is_accepted_exactly_when_it_is_one_line(text: str) -> None:
    one_line = not any(c in text for c in CONTROL)
    assert (unit_or_none(description=text, exec_start="/bin/true") is not None) == one_line
    assert (
        unit_or_none(description="x", exec_start="/bin/true", environment={"A": text}) is not None
    ) == one_line


@pytest.mark.parametrize("bad", ["a\nExecStartPre=/bin/id", "a\rb", "a\x00b", "a\x1bb"])
def test_control_characters_are_refused_in_every_unit_string(bad: str) -> None:
    assert unit_or_none(description=bad, exec_start="/bin/true") is None
    assert unit_or_none(description="x", exec_start=bad) is None
    assert unit_or_none(description="x", exec_start="/bin/true", environment={"A": bad}) is None
    assert unit_or_none(description="x", exec_start="/bin/true", user=bad) is None


def policy_or_none(**fields: object) -> BackupPolicy | None:
    base: dict[str, object] = {
        "host": "kimi",
        "schedule": "hourly",
        "retention": Retention(keep_last=3),
        "rpo": timedelta(hours=1),
        "repository": "/srv/restic/kimi",
        "password": "env:RESTIC_PASSWORD",
    }
    try:
        return BackupPolicy(**{**base, **fields})
    except ValidationError:
        return None


@settings(max_examples=300, deadline=None)
@given(exclude=ONE_LINE, path=PATH_PART)
def test_backup_script_arguments_split_back_exactly(exclude: str, path: str) -> None:
    policy = policy_or_none(excludes=[exclude], paths=[f"/srv/{path}"])
    plain = not any(c in path for c in "$`; '\"\\%")
    assume(path not in {".", ".."})
    assert (policy is not None) == plain  # a path with shell or unit syntax is refused
    assume(policy is not None)
    assert policy is not None
    script = render_script(
        "db", policy, RepositoryTarget("/srv/restic/kimi", "kimi", "root", "/srv/restic/kimi")
    )
    [line] = [ln for ln in script.splitlines() if ln.startswith("if restic backup")]
    words = shlex.split(line.removeprefix("if ").removesuffix(' >"$summary" 2>"$errors"; then'))
    assert words[words.index("--exclude") + 1] == exclude
    assert words[-3:] == ["--", f"/srv/{path}", "$stage"]
