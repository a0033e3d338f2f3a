"""Masking what looks like a secret in text a plan shows. Pure.

The first line of defence is the spec: a config file marked `sensitive: true` is never
shown at all (its diff says only that it changed, as Terraform shows a sensitive
value). This is the second: in every diff, whatever the file, the shapes a secret
usually takes are masked before the diff leaves the engine, so the text plan, the JSON
plan, the journal and the dashboard carry the same masked text:

- `key = value`, `key: value`, `KEY=value` where the key names a secret;
- the same as JSON or YAML with quotes: `"token": "..."`, `'password': '...'`;
- `Authorization: Bearer ...` (or token, Basic), and `Proxy-Authorization`;
- the password of a DSN or URL: `postgres://user:PASSWORD@host/db`.
"""

from __future__ import annotations

import re

MASK = "********"
_NAMES = (
    r"(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|credential"
    r"|private[_-]?key|dsn)"
)
_KEY_VALUE = re.compile(
    rf"(?i)((?<![A-Za-z0-9])[\"']?[A-Za-z0-9_.-]*{_NAMES}[A-Za-z0-9_.-]*[\"']?\s*[=:]\s*)"
    r"(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',}]+)"
)
_AUTHORIZATION = re.compile(
    r"(?i)((?:proxy-)?authorization[\"']?\s*[=:]\s*[\"']?(?:bearer|token|basic|digest)?\s*)"
    r"[^\s\"',}]+"
)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/\s@]*:)[^@\s/]+(@)")


def mask_secrets(text: str) -> str:
    """`text` with every value in a secret's usual shape replaced by ********."""
    text = _URL_PASSWORD.sub(lambda m: f"{m[1]}{MASK}{m[2]}", text)
    text = _AUTHORIZATION.sub(lambda m: f"{m[1]}{MASK}", text)
    return _KEY_VALUE.sub(lambda m: f"{m[1]}{_quoted(m[2])}", text)


def _quoted(value: str) -> str:
    """MASK in the value's own quotes, so the masked text keeps its syntax."""
    quote = value[0] if value[:1] in ("'", '"') and value[-1:] == value[:1] else ""
    return f"{quote}{MASK}{quote}"
