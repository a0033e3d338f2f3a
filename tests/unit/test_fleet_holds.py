"""The fleet's source holds as `status` shows them on any controller: read from the
fleet's memory, a value that is not a commit ID left out."""

from pathlib import Path

from reconciler.forge.holds import fleet_holds, holds_line
from reconciler.store.journal import Journal
from reconciler.store.memory import LocalMemory

IN_FORCE, PINNED = "a" * 40, "b" * 40


def test_the_pin_and_the_commit_in_force_are_shown(tmp_path: Path) -> None:
    memory = LocalMemory(Journal(tmp_path / "j.db"))
    memory.put("source/in-force", IN_FORCE)
    memory.put("source/pinned", PINNED)
    memory.put("source/accepted", "not a commit; rm -rf /")
    memory.put("source/kept", "1")
    holds = fleet_holds(memory)
    assert holds == {"in-force": IN_FORCE, "pinned": PINNED}
    assert holds_line(holds) == (
        f"fleet's source (etcd): commit in force {IN_FORCE[:12]}; PINNED at {PINNED[:12]} "
        "(`reconcile unpin` follows the branch again)"
    )
    assert holds_line({}) == "fleet's source (etcd): commit in force none yet"
