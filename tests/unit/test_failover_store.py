"""The failover state the controller journals is read back whatever step a move is at
(CI saw a promotion's "lease" step written and then refused by every reader: the lease
keeper's thread died of it, and the backup's lease ran out under its new service)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from reconciler.store.failover_state import FailoverState, FailoverStore, Move, MoveStep
from reconciler.store.journal import Journal
from tests.unit.helpers import load_text
from tests.unit.test_failover_data import POLICY
from tests.unit.test_spec import BASE


@pytest.mark.parametrize("step", get_args(MoveStep))
def test_a_move_at_any_step_is_read_back(tmp_path: Path, step: str) -> None:
    failover = load_text(BASE + POLICY).fleet.failover
    assert failover is not None
    journal = Journal(tmp_path / "journal.db")
    store = FailoverStore(journal, failover)
    move = Move.model_validate(
        {"kind": "failover", "source": "kimi", "target": "hermes", "epoch": 1, "step": step,
         "started": 1.0}
    )  # fmt: skip
    store.put(FailoverState(move=move))
    assert store.get().move == move
    journal.close()


def test_every_step_a_promotion_takes_is_a_move_step() -> None:
    """The steps `flows.moves` advances through, as written in its source."""
    source = (Path(__file__).parents[2] / "reconciler/flows/moves.py").read_text()
    taken = set(re.findall(r'_advance\(mover, move, "(\w+)"\)', source))
    assert taken and taken <= set(get_args(MoveStep)), taken
