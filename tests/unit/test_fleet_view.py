"""A command that only looks (`status`, `--dry-run`, `backup list`) on a follower's
machine shows the fleet's failover placement and ledger, read from a real etcd where the
leader wrote them; the journal only ever moves forward."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.coordination.choice import leadership_for
from reconciler.coordination.fleet_view import catch_up
from reconciler.coordination.guard import push_shared
from reconciler.coordination.leader import EtcdLeadership
from reconciler.store.failover_state import FailoverState, FailoverStore
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from state.load import LoadedFleet, parse_fleet
from state.placement import Placement
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.unit.test_provenance import DEMO
from tests.unit.test_shared_ledger import POLICY, filled


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


def coordinated(etcd: Cluster, tmp_path: Path, shards: int = 1) -> LoadedFleet:
    data = yaml.safe_load(Path(DEMO).read_text())
    data.setdefault("reconciler", {})["coordination"] = {
        "kind": "etcd",
        "endpoints": etcd.endpoints,
        "prefix": f"/v-{tmp_path.name}",
        "ttl": "10s",
        "retry_timeout": "2s",
        "shards": shards,
    }
    return parse_fleet(yaml.safe_dump(data), DEMO)  # its files where the demo's are


@pytest.mark.parametrize("shards", [1, 2])
def test_a_follower_shows_the_leaders_placement_and_ledger(
    etcd: Cluster, tmp_path: Path, shards: int
) -> None:
    loaded = coordinated(etcd, tmp_path, shards)
    failover = loaded.written.failover
    assert failover is not None
    leader = leadership_for(loaded.fleet.reconciler.coordination, "ctl-a", print, every=True)
    assert leader.campaign(), leader.why_not()
    leaders = Journal(tmp_path / "leader.db")
    filled(tmp_path / "leader.db")
    moved = FailoverState(placement=Placement(active=failover.backup, epoch=3), since=100.0)
    FailoverStore(leaders, failover).put(moved)
    push_shared(leader, leaders, loaded)

    follower = Journal(tmp_path / "follower.db")
    said = catch_up(loaded, follower)
    assert said is not None
    assert f"{failover.backup} active, epoch 3" in said and "3 snapshot(s)" in said
    assert FailoverStore(follower, failover).get().placement.epoch == 3
    recorded = Ledger(follower).recorded(loaded.fleet, POLICY)
    assert [e.snapshot_id[0] for e in recorded] == ["a", "b"]
    assert catch_up(loaded, follower) is None  # nothing new the second time

    # The leader's own journal is newer than what it shared: never moved back.
    newer = moved.model_copy(update={"placement": Placement(epoch=4), "since": 200.0})
    FailoverStore(leaders, failover).put(newer)
    assert catch_up(loaded, leaders) is None
    assert FailoverStore(leaders, failover).get().placement.epoch == 4
    leader.close()


def test_etcd_away_is_said_and_the_journal_is_shown(tmp_path: Path) -> None:
    data = yaml.safe_load(Path(DEMO).read_text())
    data.setdefault("reconciler", {})["coordination"] = {
        "kind": "etcd",
        "endpoints": ["http://127.0.0.1:9"],
        "retry_timeout": "1s",
    }
    said = catch_up(parse_fleet(yaml.safe_dump(data), DEMO), Journal(tmp_path / "j.db"))
    assert said is not None and "not read" in said and "this journal's shown" in said


def test_a_stored_value_of_another_shape_is_skipped(etcd: Cluster, tmp_path: Path) -> None:
    loaded = coordinated(etcd, tmp_path)
    failover = loaded.written.failover
    assert failover is not None
    leader = leadership_for(loaded.fleet.reconciler.coordination, "x", print)
    assert isinstance(leader, EtcdLeadership)
    prefix = f"/v-{tmp_path.name}/shared"
    leader.client.put(f"{prefix}/failover/{failover.primary}->{failover.backup}", b"{not json")
    leader.client.put(f"{prefix}/ledger/{POLICY}", b"[1, 2")
    journal = Journal(tmp_path / "j.db")
    assert catch_up(loaded, journal) is None
    assert FailoverStore(journal, failover).get().placement.epoch == 0
    leader.close()
