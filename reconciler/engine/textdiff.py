"""Text diffs for plans: unified diffs and which unit-file settings changed. Pure."""

from __future__ import annotations

import difflib
import hashlib

from reconciler.engine.masking import mask_secrets
from reconciler.untrusted.text import shown

MAX_DIFF_CHARS = 16 * 1024  # a plan, the journal and the page show at most this of a diff


def unified_diff(old: str, new: str, path: str) -> str:
    """A unified diff of `old` to `new`, masked (reconciler.engine.masking): every plan,
    JSON plan, journal entry and page that shows it shows the masked text."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        f"a{path}" if old else "/dev/null",
        f"b{path}",
        n=1,
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if len(text) > MAX_DIFF_CHARS:
        return cut_diff(old, new)
    return mask_secrets(shown(text, multiline=True))


def cut_diff(old: str, new: str) -> str:
    """What a plan shows of a diff too large to store: sizes and hashes, never the text
    (a host can answer with megabytes; every run would journal them)."""

    def what(text: str) -> str:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return f"{len(text.encode())} bytes, sha256 {digest}…"

    return (
        f"(diff larger than {MAX_DIFF_CHARS // 1024} KiB: not shown; "
        f"now {what(old)}; wanted {what(new)})\n"
    )


def hidden_diff(old: str, new: str) -> str:
    """What a plan shows of a sensitive file's change: that it changed, not how."""
    before, after = len(old.splitlines()), len(new.splitlines())
    return f"(sensitive: content hidden; {before} line(s) before, {after} after)\n"


def changed_keys(old: str, new: str) -> str:
    """Which `Key=` settings differ between two unit files, e.g. 'ExecStart changed'."""

    def settings(text: str) -> set[str]:
        return {line for line in text.splitlines() if "=" in line and not line.startswith("#")}

    before, after = settings(old), settings(new)
    keys = sorted({line.split("=", 1)[0] for line in before ^ after})
    return ", ".join(keys) + " changed" if keys else "formatting changed"
