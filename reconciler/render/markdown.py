"""Markdown for a forge's comments and issues, where nothing a host or a proposal wrote
may render as a mention, a link, an image or HTML. Pure."""

from __future__ import annotations

import re

from reconciler.untrusted.text import shown


def code_block(text: str, info: str) -> str:
    """`text` as a fenced code block that nothing in it can close: Markdown renders no
    mention, link, image or HTML inside one (host text in an issue stays inert)."""
    inert = shown(text, multiline=True)
    longest = max((len(run) for run in re.findall(r"`+|~+", inert)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{inert}\n{fence}"
