"""The one escaping function (reconciler.untrusted.text), over arbitrary bytes and text."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from reconciler.untrusted.text import EscapedStream, shown, shown_bytes


def raw_controls(text: str, kept: str = "") -> list[str]:
    return [c for c in text if not c.isprintable() and c not in kept]


@given(st.binary(max_size=512))
def test_no_raw_control_character_survives_any_bytes(data: bytes) -> None:
    one_line = shown_bytes(data)
    assert raw_controls(one_line) == []
    assert "\n" not in one_line and "\r" not in one_line  # one event, one line
    assert raw_controls(shown_bytes(data, multiline=True), kept="\n\t") == []


@given(st.text(max_size=512))
def test_no_raw_control_character_survives_any_text(text: str) -> None:
    assert raw_controls(shown(text)) == []
    assert raw_controls(shown(text, multiline=True), kept="\n\t") == []


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "S"]), max_size=200))
def test_printable_text_is_unchanged(text: str) -> None:
    assert shown(text) == text == shown(text, multiline=True)


def test_what_a_person_sees() -> None:
    assert shown("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\a"
    assert shown("ok\rconverged\n[fake] line") == "ok\\rconverged\\n[fake] line"
    assert shown("evil\u202egnp.exe") == "evil\\u202egnp.exe"
    assert shown("a\nb\tc\x1b[2K", multiline=True) == "a\nb\tc\\x1b[2K"


def test_a_terminal_stream_never_writes_raw() -> None:
    out = io.StringIO()
    print("state: \x1b[32mconverged\x1b[0m", file=EscapedStream(out))
    assert out.getvalue() == "state: \\x1b[32mconverged\\x1b[0m\n"
