"""A promotion degrades, never stalls: the first recorded snapshot that restores is the
data, and the statement says what newer one did not (reconciler.flows.failover_data).
The restore itself is real on the lab (tests/integration/failover/); here it is
a function that fails for the snapshots the test names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backups.restic_repo import Snapshot
from reconciler.events.bus import Event, EventBus
from reconciler.flows.failover_data import Candidate, loss_of, restore_best
from reconciler.repositories.in_place import Restored
from reconciler.repositories.operations import BackupFailed
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from tests.spec_text import backup_policy
from tests.unit.helpers import load_text
from tests.unit.test_spec import BASE

LOST_AT = 1_800_000_000.0
POLICY = (
    "backups:\n"
    + backup_policy(
        "agentdata",
        "kimi",
        "/srv/restic/kimi",
        "env:RESTIC_PASSWORD",
        paths="[/srv/data]",
        retention="{keep_last: 3}",
        more=(
            "copies:",
            '  offsite: {repository: "local:/srv/offsite/kimi", password: env:OFFSITE, rpo: 1d}',
        ),
    )
    + "failover: {primary: kimi, backup: hermes, services: [agent], data: [agentdata]}\n"
)


def snapshot(name: str, minutes_before: float) -> Snapshot:
    at = datetime.fromtimestamp(LOST_AT - 60 * minutes_before, UTC)
    return Snapshot(name * 8, at, "kimi", ("agentdata",), ("/srv/data",))


def restoring(broken: set[str], tried: list[str]) -> Any:
    def restore(
        _loaded: object, name: str, snap: Snapshot, _host: str, _report: object, _repo: object
    ) -> Restored:
        tried.append(snap.short_id)
        if snap.short_id in broken:
            raise BackupFailed(f"backup {name}: snapshot {snap.short_id}: a FIFO: refused")
        return Restored(name, snap, 3, 0.1)

    return restore


def test_the_next_recorded_snapshot_then_the_copy_is_restored_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFSITE", "x")
    loaded = load_text(BASE + POLICY)
    found = [
        Candidate(snapshot("a", 10)),
        Candidate(snapshot("b", 70)),
        Candidate(snapshot("c", 300), "offsite"),
    ]
    loss = loss_of(loaded, "agentdata", found, [], LOST_AT)
    assert loss.within_rpo and "data from snapshot aaaaaaaa taken 10m" in loss.statement
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    ledger = Ledger(Journal(tmp_path / "journal.db"))
    tried: list[str] = []
    done, said = restore_best(
        loaded, "agentdata", loss, "hermes", ledger, bus, lambda _l: None, LOST_AT,
        restoring({"aaaaaaaa", "bbbbbbbb"}, tried),
    )  # fmt: skip
    assert tried == ["aaaaaaaa", "bbbbbbbb", "cccccccc"]
    assert done.snapshot.short_id == "cccccccc"
    assert "data from snapshot cccccccc of copy offsite taken 5h" in said.statement
    assert "OVER objective" in said.statement and not said.within_rpo
    assert "snapshot aaaaaaaa did not restore" in said.statement
    assert "snapshot bbbbbbbb did not restore" in said.statement
    assert [(e.severity, e.kind) for e in events] == [("P1", "drill_failed")] * 2
    assert "snapshot aaaaaaaa does not restore" in events[0].message


def test_nothing_that_restores_fails_the_move(tmp_path: Path) -> None:
    loaded = load_text(BASE + POLICY)
    loss = loss_of(loaded, "agentdata", [Candidate(snapshot("a", 10))], [], LOST_AT)
    ledger = Ledger(Journal(tmp_path / "journal.db"))
    with pytest.raises(BackupFailed, match="nothing restores: snapshot aaaaaaaa did not"):
        restore_best(
            loaded, "agentdata", loss, "hermes", ledger, EventBus(), lambda _l: None, LOST_AT,
            restoring({"aaaaaaaa"}, []),
        )  # fmt: skip


def test_no_snapshot_at_all_is_all_data_lost_and_an_unlisted_store_is_said() -> None:
    loaded = load_text(BASE + POLICY)
    loss = loss_of(loaded, "agentdata", [], ["cannot list snapshots: locked"], LOST_AT)
    assert loss.snapshot is None and not loss.within_rpo
    assert "all data lost; cannot list snapshots: locked" in loss.statement
