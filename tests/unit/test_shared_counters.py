"""Backoffs, escalation and the verifications' schedule in the fleet's memory (a real
etcd on loopback): a new leader goes on where the one before it stopped, on its own
clock; a deposed leader's write is refused; a value of another shape is skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.coordination.etcd import EtcdClient
from reconciler.coordination.etcd_memory import EtcdMemory
from reconciler.coordination.sharded import ShardedLeadership
from reconciler.daemon.backoff import Backoffs
from reconciler.daemon.shared_backoffs import SharedBackoffs
from reconciler.store.memory import Deposed
from reconciler.store.schedule import Ran, Schedule
from state.spec.controller import EtcdCoordination, ReconcilerSettings
from state.spec.fleet import Fleet
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.unit.helpers import load_text
from tests.unit.test_shards import fleet_text
from tests.unit.test_spec import BASE


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


class Leader:
    """A leader key held in etcd, and the fenced memory of whoever holds it."""

    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self.client, self.prefix, self.guard = client, prefix, f"{prefix}/leader"
        self.token: int | None = None

    def elect(self, name: str) -> EtcdMemory:
        self.client.delete(self.guard)
        self.client.put(self.guard, name.encode())
        found = self.client.get(self.guard)
        assert found is not None
        token = found.create_revision
        return EtcdMemory(self.client, self.prefix, lambda: (self.guard, token))


@pytest.fixture
def leader(etcd: Cluster, tmp_path: Path) -> Iterator[Leader]:
    client = EtcdClient(etcd.endpoints, timeout=5.0)
    yield Leader(client, f"/c-{tmp_path.name}")
    client.close()


def test_a_new_leader_goes_on_counting_and_does_not_escalate_again(leader: Leader) -> None:
    settings = ReconcilerSettings()
    first_memory = leader.elect("c1")
    c1 = Backoffs(settings)
    SharedBackoffs(c1, lambda _host=None: first_memory, clock=lambda: 1000.0)
    failures = [c1.record_failure(("kimi", "agent"), 1000.0) for _ in range(3)]
    assert [f.escalate for f in failures] == [False, False, True]  # escalated on the 3rd
    assert failures[-1].delay == 40.0

    second_memory = leader.elect("c2")  # c1 dies; c2 leads, its monotonic clock elsewhere
    c2 = Backoffs(settings)
    taken = SharedBackoffs(c2, lambda _host=None: second_memory, clock=lambda: 50.0)
    assert taken.load() == "1 backoff(s) from the last leader"
    assert c2.blocked(("kimi", "agent"), 50.0 + 39.0)  # the same wait, on c2's clock
    assert not c2.blocked(("kimi", "agent"), 50.0 + 41.0)
    again = c2.record_failure(("kimi", "agent"), 91.0)
    assert again.attempts == 4 and again.delay == 80.0 and not again.escalate  # paged once

    # Without the shared states a new leader starts over: the same failure pages again.
    fresh = Backoffs(settings)
    assert [fresh.record_failure(("kimi", "agent"), 0.0).escalate for _ in range(3)][-1]


def test_a_deposed_leaders_backoff_is_not_written_and_a_reset_is_shared(leader: Leader) -> None:
    settings = ReconcilerSettings()
    old = leader.elect("c1")
    c1 = Backoffs(settings)
    SharedBackoffs(c1, lambda _host=None: old, clock=lambda: 0.0)
    c1.record_failure(("kimi", None), 0.0)
    current = leader.elect("c2")  # c1 was paused; c2 leads now
    c1.record_failure(("kimi", None), 1.0)  # refused: c1's token no longer holds
    stored = json.loads(current.get("backoff/kimi") or "{}")
    assert stored["-"]["failures"] == 1, stored

    c2 = Backoffs(settings)
    SharedBackoffs(c2, lambda _host=None: current, clock=lambda: 0.0).load()
    reset = settings.backoff_reset.total_seconds()
    c2.record_healthy(("kimi", None), 1.0)
    assert c2.record_healthy(("kimi", None), 1.0 + reset)  # healthy long enough: reset
    assert current.get("backoff/kimi") is None


def test_a_stored_backoff_of_another_shape_is_skipped(leader: Leader) -> None:
    memory = leader.elect("c1")
    good = {
        "failures": 2,
        "next_attempt": 10.0,
        "first_failure": 1.0,
        "healthy_since": None,
        "escalated": False,
    }
    memory.put(
        "backoff/kimi",
        json.dumps({"agent": good, "bad": {**good, "failures": "2"}, "x": [1], "y": None}),
    )
    memory.put("backoff/hermes", "not json")
    backoffs = Backoffs(ReconcilerSettings())
    shared = SharedBackoffs(backoffs, lambda _host=None: memory, clock=lambda: 0.0)
    assert shared.load() == "1 backoff(s) from the last leader"
    assert set(backoffs.states) == {("kimi", "agent")}


def test_a_verification_another_leader_ran_is_not_run_again(leader: Leader) -> None:
    c1 = Schedule(leader.elect("c1"))
    assert c1.last("drill", "db", None) is None
    c1.ran("drill", "db", 500.0)
    c1.ran("copy", "db:offsite", 400.0, ok=False)
    c2 = Schedule(leader.elect("c2"))
    assert c2.last("drill", "db", Ran(100.0)) == Ran(500.0)  # c1's, later than c2's own
    assert c2.last("drill", "db", Ran(900.0)) == Ran(900.0)
    assert c2.last("copy", "db:offsite", None) == Ran(400.0, ok=False)  # a failed fill
    c1.ran("check", "db", 600.0)  # deposed: refused, and not remembered as shared
    assert Schedule(leader.elect("c3")).last("check", "db", None) is None
    assert Schedule(None).last("check", "db", Ran(1.0)) == Ran(1.0)  # one controller


def test_a_changed_service_starts_afresh_an_unchanged_one_keeps_its_backoff() -> None:
    text = BASE + "  beat:\n    host: hermes\n    unit: {description: b, exec_start: /bin/true}\n"
    fleet = Fleet.model_validate(yaml.safe_load(text))
    backoffs = Backoffs(fleet.reconciler, fleet)
    told: list[str] = []
    backoffs.on_change = told.append
    backoffs.record_failure(("kimi", "agent"), 0.0)
    backoffs.record_failure(("hermes", "beat"), 0.0)
    told.clear()
    agent = fleet.services["agent"]
    fixed = agent.model_copy(update={"rto": agent.rto * 2})
    backoffs.follow(fleet.model_copy(update={"services": {**fleet.services, "agent": fixed}}))
    assert set(backoffs.states) == {("hermes", "beat")}  # the fix is tried at once
    assert told == ["kimi"]  # and the fleet's memory told


def test_with_shards_a_hosts_backoff_is_written_only_by_its_shards_leader(
    etcd: Cluster, tmp_path: Path
) -> None:
    """h1 is in shard 1 and h2 in shard 0: once c1 and c2 lead one shard each, neither
    can write the other's host (its backoff, its policies' verification records), and
    each writes its own."""
    settings = EtcdCoordination.model_validate(
        {"kind": "etcd", "endpoints": etcd.endpoints, "prefix": f"/s-{tmp_path.name}",
         "ttl": "10s", "retry_timeout": "2s", "shards": 2}
    )  # fmt: skip
    loaded = load_text(fleet_text(2))
    c1 = ShardedLeadership(settings, "c1", lambda _line: None)
    c2 = ShardedLeadership(settings, "c2", lambda _line: None)
    try:
        assert c1.campaign()
        c2.campaign()  # registered: c1 gives a shard up at its next campaign
        c1.campaign()
        assert c2.campaign()
        for leader in (c1, c2):
            leader.follow(loaded)
        owner = {h: next(c for c in (c1, c2) if k in c.held) for h, k in {"h1": 1, "h2": 0}.items()}
        for host, writer in owner.items():
            other = c2 if writer is c1 else c1
            mine, theirs = writer.memory(host), other.memory(host)
            assert mine is not None and theirs is not None
            mine.put(f"backoff/{host}", "{}")
            with pytest.raises(Deposed):
                theirs.put(f"backoff/{host}", "{}")
            # A policy on that host: its check is recorded by its shard's leader only.
            Schedule(writer.memory(), writer.memory).ran("check", f"p-{host}", 5.0, host=host)
            Schedule(other.memory(), other.memory).ran("drill", f"p-{host}", 6.0, host=host)
            fleet = Schedule(other.memory())
            assert fleet.last("check", f"p-{host}", None) == Ran(5.0)
            assert fleet.last("drill", f"p-{host}", None) is None
    finally:
        c1.close()
        c2.close()
