"""Text diffs for plans: unified diffs and which unit-file settings changed. Pure."""

from __future__ import annotations

import difflib

from reconciler.engine.masking import mask_secrets


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
    return mask_secrets("".join(line if line.endswith("\n") else line + "\n" for line in lines))


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
