"""Files the spec names on the controller: config templates and install sources.

The state file arrives in pull requests, and git stores symlinks, so a pull request can
add `templates/agent.toml -> /root/.ssh/id_ed25519` (or a symlinked `templates/`
directory). A template's text is shown in plans, and a source is uploaded to a host:
following such a link would print the controller's key in a review, or copy it to a
host. So every named file is resolved here, once, and:

- a template must lie inside the state directory once every symlink is resolved (one
  that stays inside is fine);
- an install source may be written as a path outside it (`../bin/agent`, visible in the
  review), but no symlink on its way may lead out of the state directory;
- a state file loaded from a git commit (`root` is the commit's exported tree) names
  only files of that commit: nothing outside the tree, written or through a link;
- a refusal says which rule, never what the file holds, its hash, or whether a file
  exists at the link's target.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class LocalFileRefused(ValueError):
    """A named file the controller will not read; the message is safe to show."""


def local_file(state_dir: Path, named: str, *, inside_only: bool, root: Path | None = None) -> Path:
    """The real path of `named` (relative to `state_dir`, or absolute), checked as the
    module says. Raises LocalFileRefused."""
    lexical = Path(os.path.normpath(state_dir.absolute() / named))
    real = Path(os.path.realpath(lexical))
    if root is not None and not real.is_relative_to(Path(os.path.realpath(root))):
        raise LocalFileRefused("not in the commit's tree (a fetched state names its own files)")
    root = Path(os.path.realpath(state_dir))
    if real.is_relative_to(root):
        return real
    if inside_only:
        raise LocalFileRefused("leads out of the state directory (through a symlink)")
    if real != lexical:
        raise LocalFileRefused("a symlink on its path leads out of the state directory")
    return real


def read_templates(state_dir: Path, names: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each template, read once from inside the state directory: (texts, refusals), both
    by name; a refusal is why it was not read, safe to show."""
    texts, refused = {}, {}
    for name in sorted(names):
        try:
            texts[name] = read_local(local_file(state_dir, name, inside_only=True)).decode()
        except LocalFileRefused as exc:
            refused[name] = str(exc)
        except UnicodeDecodeError:
            refused[name] = "expected UTF-8 text"
    return texts, refused


def read_local(path: Path) -> bytes:
    """A regular file's bytes, not through a symlink swapped in after the check.
    Raises LocalFileRefused for anything else (missing, a directory, a FIFO, a device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise LocalFileRefused("not a readable file") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise LocalFileRefused("not a regular file")
        return handle.read()
