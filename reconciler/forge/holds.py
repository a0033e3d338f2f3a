"""Which commits the fleet holds: the one in force (the branch may only move forward from
it, and `verify: {mode: all}` starts there), a pinned one (`reconcile pin`), an accepted
held tip (`reconcile accept`). With the fleet's memory (reconciler.store.memory) they
are the fleet's, kept under `source/NAME`: a pin made on one controller holds on every
other, and a successor verifies from the commit the fleet had in force, not from its
own last one. Each mirror also keeps them as refs/fleet/NAME, so gc keeps the commits."""

from __future__ import annotations

import re

from reconciler.forge.errors import SourceRefused
from reconciler.store.memory import Memory
from reconciler.untrusted.text import shown

SHARED = ("pinned", "in-force", "accepted")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
MARK = "source/kept"  # the memory holds them: a mirror's own refs are not taken again


def merged(memory: Memory, local: dict[str, str]) -> dict[str, str]:
    """`local` (the mirror's refs/fleet/) with the SHARED names as the memory holds them.
    A memory that never held them first takes the mirror's own (kept in refs before),
    once."""
    items = memory.items("source")
    if MARK not in items:
        for name, commit in local.items():
            if name in SHARED:
                memory.put(f"source/{name}", commit)
        memory.put(MARK, "1")
        items = memory.items("source")
    found = {name: commit for name, commit in local.items() if name not in SHARED}
    for key, value in items.items():
        name = key.removeprefix("source/")
        if name not in SHARED:
            continue
        if not COMMIT.fullmatch(value):
            raise SourceRefused(
                f"the fleet's memory holds {key} = {shown(value[:60])!r}: expected a commit "
                "ID (`reconcile unpin` or `reconcile accept` writes it again)"
            )
        found[name] = value
    return found


def put(memory: Memory, name: str, commit: str | None) -> None:
    """Hold `commit` as NAME in the fleet's memory, or drop it (None)."""
    memory.put(MARK, "1")  # kept here from now on: no mirror's refs are taken again
    if commit is None:
        memory.delete(f"source/{name}")
    else:
        memory.put(f"source/{name}", commit)


def fleet_holds(memory: Memory) -> dict[str, str]:
    """The commits the fleet's memory holds (read only): `in-force`, `pinned`,
    `accepted`; a value that is not a commit ID is left out."""
    found = {}
    for key, value in memory.items("source").items():
        name = key.removeprefix("source/")
        if name in SHARED and COMMIT.fullmatch(value):
            found[name] = value
    return found


def holds_line(holds: dict[str, str]) -> str:
    """`status`'s line on the fleet's source, as every controller sees it."""
    in_force = holds.get("in-force")
    line = f"fleet's source (etcd): commit in force {in_force[:12] if in_force else 'none yet'}"
    if pinned := holds.get("pinned"):
        line += f"; PINNED at {pinned[:12]} (`reconcile unpin` follows the branch again)"
    if accepted := holds.get("accepted"):
        line += f"; accepted {accepted[:12]}"
    return line
