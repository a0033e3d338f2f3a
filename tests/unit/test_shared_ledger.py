"""The snapshot ledger shared between controllers: what one leader recorded, the next
merges before its first pass (through a real etcd, under the leader's token); the
first verdict stands, rows of the wrong shape are skipped, an unchanged ledger is not
written again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.coordination.guard import pull_shared, push_shared
from reconciler.coordination.leader import EtcdLeadership
from reconciler.coordination.shared_ledger import Pushed, ledger_key, pull_ledgers
from reconciler.store.journal import Journal
from reconciler.store.ledger import Entry, Ledger
from state.spec.controller import EtcdCoordination
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.unit.test_provenance import demo

POLICY = "metrics-db"


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


def filled(path: Path) -> Ledger:
    fleet = demo().fleet
    ledger = Ledger(Journal(path))
    ledger.add(fleet, POLICY, Entry("a" * 64, "recorded", "kimi", 0, 10.0, 11.0))
    ledger.add(fleet, POLICY, Entry("b" * 64, "recorded", "kimi", 0, 20.0, 21.0))
    ledger.add(fleet, POLICY, Entry("f" * 64, "forged", "kimi", 9, 5.0, 22.0, "tagged epoch-9"))
    ledger.announced(POLICY, "f" * 64)
    ledger.hold(fleet, POLICY, "a" * 64, "restored by a failover", 30.0)
    return ledger


def test_an_exported_ledger_merges_whole_into_an_empty_one(tmp_path: Path) -> None:
    fleet = demo().fleet
    source, target = filled(tmp_path / "a.db"), Ledger(Journal(tmp_path / "b.db"))
    assert target.merge(POLICY, source.export(POLICY)) == 3
    assert target.entries(fleet, POLICY) == source.entries(fleet, POLICY)
    assert target.held(fleet, POLICY) == {"a" * 64: "restored by a failover"}
    assert target.unannounced() == []  # its P1 was raised once, by the other controller
    assert target.merge(POLICY, source.export(POLICY)) == 0  # again: nothing new


def test_the_first_verdict_stands_and_odd_rows_are_skipped(tmp_path: Path) -> None:
    fleet = demo().fleet
    target = Ledger(Journal(tmp_path / "b.db"))
    target.add(fleet, POLICY, Entry("a" * 64, "forged", "kimi", 9, 10.0, 1.0, "tagged epoch-9"))
    exported = filled(tmp_path / "a.db").export(POLICY)
    exported["entries"].append(["r", "c" * 64, "trusted", "kimi", 0, 1.0, 1.0, "", 0])
    exported["entries"].append(["r", "d" * 64])
    exported["held"] = [["r", "e" * 64, "why", "not a time"]]
    assert target.merge(POLICY, exported) == 2  # b and f; a was judged forged here first
    verdicts = {e.snapshot_id[0]: e.verdict for e in target.entries(fleet, POLICY)}
    assert verdicts == {"a": "forged", "b": "recorded", "f": "forged"}
    assert target.held(fleet, POLICY) == {}
    assert target.merge(POLICY, "not a ledger") == 0


def test_a_successor_takes_the_snapshots_its_predecessor_recorded(
    etcd: Cluster, tmp_path: Path
) -> None:
    settings = EtcdCoordination.model_validate(
        {
            "kind": "etcd",
            "endpoints": etcd.endpoints,
            "prefix": f"/t-{tmp_path.name}",
            "ttl": "10s",
            "retry_timeout": "2s",
        }
    )
    loaded = demo()
    first = EtcdLeadership(settings, "ctl-a", lambda _line: None)
    assert first.campaign()
    filled(tmp_path / "a.db")
    pushed: Pushed = {}
    push_shared(first, Journal(tmp_path / "a.db"), loaded, pushed)
    key = f"/t-{tmp_path.name}/shared/ledger/{POLICY}"
    written = first.client.get(key)
    assert written is not None and ledger_key(POLICY) in pushed
    spec = first.client.get(f"/t-{tmp_path.name}/shared/spec")
    push_shared(first, Journal(tmp_path / "a.db"), loaded, pushed)  # unchanged: not rewritten
    again = first.client.get(key)
    assert again is not None and again.mod_revision == written.mod_revision
    spec_again = first.client.get(f"/t-{tmp_path.name}/shared/spec")
    assert spec is not None and spec_again is not None
    assert spec_again.mod_revision == spec.mod_revision and spec.value == loaded.sha256.encode()
    first.close()  # its machine dies; the next controller leads

    second = EtcdLeadership(settings, "ctl-b", lambda _line: None)
    assert second.campaign(), second.why_not()
    journal = Journal(tmp_path / "b.db")
    said = pull_shared(second, journal, loaded)
    assert said is not None and "3 snapshot(s) recorded by the last leader" in said
    recorded = Ledger(journal).recorded(loaded.fleet, POLICY)
    assert [e.snapshot_id[0] for e in recorded] == ["a", "b"]
    second.close()
    stranger = EtcdLeadership(settings, "ctl-c", lambda _line: None)
    stranger.client.put(key, b"{not json")
    assert pull_ledgers(stranger, Journal(tmp_path / "c.db"), loaded) == 0
    stranger.close()
