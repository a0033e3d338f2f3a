"""`exact_file`: a file with exactly this content, mode and owner, in few round trips.

pyinfra's `files.file` + `files.put` pair (mode and owner set before any content is
written) costs about 14 commands on a host that lacks the file, and writes the content
in place, so a deploy cut short leaves half a file. This operation reads the file's
state with one command (`FileDigest`) and, when anything differs, writes the content
to a new file beside it that already has its final mode and owner, then renames it
over the old one (`mv -T`: a symlink at the path is replaced, never followed):

- unchanged: 1 command;
- mode or owner differ: 2;
- content differs or the file is missing: 3 commands and the upload; 2 and the upload
  when the caller already knows (`stale`: `reconcile`'s plan read the file moments ago).
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from collections.abc import Generator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pyinfra import host  # type: ignore[attr-defined]
from pyinfra.api.command import FileUploadCommand
from pyinfra.api.facts import FactBase
from pyinfra.api.operation import operation

NEW_SUFFIX = ".fleet-reconciler.new"


@dataclass(frozen=True)
class FoundFile:
    """What is at a path: `kind` is file, absent, link or other (a directory...)."""

    kind: str
    user: str = ""
    group: str = ""
    mode: int = 0
    sha256: str = ""


class FileDigest(FactBase[FoundFile]):
    """A path's kind, and for a regular file its owner, group, mode and sha256."""

    def command(self, path: str) -> str:
        p = shlex.quote(path)
        return (
            f"if [ -L {p} ]; then echo link; elif [ -f {p} ]; then echo file; "
            f"stat -c '%U %G %a' -- {p} && sha256sum -- {p}; "
            f"elif [ -e {p} ]; then echo other; else echo absent; fi"
        )

    def process(self, output: list[str]) -> FoundFile:
        lines = [line.strip() for line in output]
        kind = lines[0] if lines else "other"
        if kind != "file" or len(lines) < 3:
            return FoundFile(kind if kind in ("absent", "link") else "other")
        user, group, mode = [*lines[1].split(), "", "", ""][:3]
        try:
            octal = int(mode, 8)
        except ValueError:
            return FoundFile("other")
        return FoundFile("file", user, group, octal, lines[2].split()[0] if lines[2] else "")


def _chown_chmod(path: str, user: str, group: str, mode: int) -> str:
    q = shlex.quote(path)
    return f"chown {shlex.quote(user)}:{shlex.quote(group)} -- {q} && chmod {mode:o} -- {q}"


@operation()
def exact_file(
    content: str | bytes, dest: str, mode: str, user: str, group: str, stale: bool = False
) -> Generator[Any, None, None]:
    """`dest` holds `content` with `mode` (octal text) and `user`:`group`. A missing
    parent directory is made and given the same owner, as `files.file` does. `stale`:
    the caller's plan just found the file missing or different, so it is written
    without being read again (the verification after the apply reads it)."""
    data = content.encode() if isinstance(content, str) else content
    wanted_mode = int(mode, 8)
    if not stale:
        found: FoundFile = host.get_fact(FileDigest, path=dest)
        digest = hashlib.sha256(data).hexdigest()
        same_content = found.kind == "file" and found.sha256 == digest
        if same_content and (found.user, found.group, found.mode) == (user, group, wanted_mode):
            return
        if same_content:
            yield _chown_chmod(dest, user, group, wanted_mode)
            return
    new, parent = dest + NEW_SUFFIX, posixpath.dirname(dest) or "/"
    q_new, q_parent = shlex.quote(new), shlex.quote(parent)
    owner = f"{shlex.quote(user)}:{shlex.quote(group)}"
    yield (
        f"{{ [ -d {q_parent} ] || {{ mkdir -p -- {q_parent} && chown {owner} -- {q_parent}; }}; }}"
        f" && rm -f -- {q_new} && ( set -C && umask 077 && : > {q_new} )"
        f" && {_chown_chmod(new, user, group, wanted_mode)}"
    )
    yield FileUploadCommand(BytesIO(data), new)
    yield f"mv -fT -- {q_new} {shlex.quote(dest)}"
