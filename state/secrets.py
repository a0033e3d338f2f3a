"""Resolve a secret reference (`env:NAME` or `file:/path`) to its value, on the controller.

The value is returned to the caller and nothing else: it never appears in an error
message, a plan, a log line or a unit file.
"""

from __future__ import annotations

import os
from pathlib import Path


class SecretUnavailable(LookupError):
    """The reference points nowhere; the message names the reference, never a value."""


def resolve_secret(ref: str) -> str:
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise SecretUnavailable(f"secret {ref}: environment variable {name} is not set")
        return value
    if kind == "file":
        try:
            return Path(name).read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise SecretUnavailable(f"secret {ref}: cannot read {name}: {exc.strerror}") from None
    raise SecretUnavailable(f"secret {ref}: expected 'env:NAME' or 'file:/path'")
