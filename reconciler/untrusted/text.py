"""Showing text a host, a forge or a channel wrote: the one escaping function.

A host can answer with escape sequences (retitle a terminal, erase a line, print a fake
green "converged"), a carriage return, or a newline that forges a whole line of output.
`shown` renders every character that is not printable the way systemd and kubectl show
them (`\\x1b`, `\\n`, `\\u202e`), so what reaches a terminal, a log line or a page is inert
text. It is applied where host text enters (observation) and again at every terminal
(`EscapedStream`), so a path that forgot it still prints nothing raw.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # the terminal escaping runs before the CLI loads pydantic
    from state.secrets import Secret

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class _Table(dict[int, str]):
    """str.translate's table, filled as characters are first met."""

    def __init__(self, kept: str) -> None:
        super().__init__()
        self.kept = kept

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = char if char.isprintable() or char in self.kept else _escape(char)
        self[code] = value
        return value


_ONE_LINE = _Table("")
_LINES = _Table("\n\t")


def shown(text: str, multiline: bool = False) -> str:
    """`text` with every non-printable character escaped; with `multiline`, newlines and
    tabs are kept (a diff, a plan) and everything else is still escaped."""
    if text.isprintable():
        return text
    return text.translate(_LINES if multiline else _ONE_LINE)


def shown_bytes(data: bytes, multiline: bool = False) -> str:
    """Bytes from a host as text: invalid UTF-8 as `\\xNN`, then `shown`."""
    return shown(data.decode("utf-8", errors="backslashreplace"), multiline)


class EscapedStream:
    """A terminal stream whose every write goes through `shown(..., multiline=True)`."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(shown(text, multiline=True))

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def redact(text: str, secret: Secret) -> str:
    """`text` with the secret's value masked: an error from a call that carried a token
    (in a URL, a header) may quote it."""
    value = secret.reveal()
    return text.replace(value, "********") if value else text
