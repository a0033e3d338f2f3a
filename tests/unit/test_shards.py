"""Shards (state.shards): which controller's share each host is in. Pure."""

from __future__ import annotations

import pytest

from reconciler.coordination.leader import Holder, LeaderView, ShardView
from reconciler.render.status_text import leader_lines
from state.errors import SpecError
from state.shards import preference, shard_map, shard_units, shard_view
from tests.unit.helpers import load_text

BACKUP = (
    "{host: %s, sqlite: [/root/db.sqlite], schedule: hourly, retention: {keep_within: 30d}, "
    "rpo: 1h, repository: %s, password: env:RESTIC_PASSWORD}"
)


def fleet_text(hosts: int, extra: str = "") -> str:
    lines = ["version: 1", "hosts:"]
    lines += [f"  h{i}: {{address: 198.18.0.{10 + i}}}" for i in range(1, hosts + 1)]
    lines += ["services:"]
    lines += [
        f"  s{i}: {{host: h{i}, unit: {{description: s, exec_start: /bin/sleep infinity}}}}"
        for i in range(1, hosts + 1)
    ]
    return "\n".join(lines) + "\n" + extra


BY_NAME = BACKUP % ("h3", "'sftp:root@h4:/srv/restic/h3'")
BY_ADDRESS = BACKUP % ("h5", "'sftp:root@198.18.0.16:/srv/restic/h5'")
PAIRED = fleet_text(6) + (
    f"backups:\n  by-name: {BY_NAME}\n  by-address: {BY_ADDRESS}\n"
    "failover: {primary: h1, backup: h2, services: [s1], grace: 20s, fence_after: 10s}\n"
)


def test_hosts_that_act_on_each_other_are_one_unit() -> None:
    """A failover pair, and a backup's host with its sftp repository's host (written as a
    name or as the host's address): no apply ever writes to another shard's host."""
    units = shard_units(load_text(PAIRED).written)
    assert units == [{"h1", "h2"}, {"h3", "h4"}, {"h5", "h6"}]
    fleet = load_text(PAIRED).written
    for shards in (2, 3, 5, 16):
        found = shard_map(fleet, shards)
        assert found["h1"] == found["h2"] and found["h3"] == found["h4"]
        assert found["h5"] == found["h6"]
        assert set(found.values()) <= set(range(shards))


def test_a_host_moves_only_when_the_shard_count_does() -> None:
    """Rendezvous hashing: adding hosts never moves the others; most hosts stay put from
    4 to 5 shards (a modulo would move four fifths), and every shard gets some."""
    before = shard_map(load_text(fleet_text(60)).written, 4)
    after = shard_map(load_text(fleet_text(80)).written, 4)
    assert {h: after[h] for h in before} == before
    assert set(before.values()) == {0, 1, 2, 3}
    five = shard_map(load_text(fleet_text(60)).written, 5)
    moved = sum(five[h] != before[h] for h in before)
    assert 0 < moved < 30, moved  # about a fifth should move


def test_the_lab_hosts_land_in_different_shards() -> None:
    """The integration test of sharded controllers relies on this split."""
    assert shard_map(load_text(fleet_text(2)).written, 2) == {"h1": 1, "h2": 0}
    assert shard_map(load_text(fleet_text(2)).written, 1) == {"h1": 0, "h2": 0}


def test_controllers_reach_for_shards_in_their_own_order() -> None:
    orders = {name: preference(name, 8) for name in ("c1", "c2", "c3", "c4")}
    assert all(sorted(order) == list(range(8)) for order in orders.values())
    assert len({order[0] for order in orders.values()}) > 1


def test_a_shard_view_holds_its_hosts_and_what_runs_on_them() -> None:
    loaded = load_text(PAIRED)
    mine = shard_view(loaded, {"h3", "h4"})
    assert set(mine.fleet.hosts) == {"h3", "h4"} and set(mine.written.hosts) == {"h3", "h4"}
    assert set(mine.fleet.services) == {"s3", "s4"} and set(mine.fleet.backups) == {"by-name"}
    assert mine.written.failover is None  # the pair is in another shard
    paired = shard_view(loaded, {"h1", "h2"})
    assert paired.written.failover is not None and paired.written.failover.primary == "h1"
    assert "s1" in paired.fleet.services and not paired.fleet.backups


def test_shards_are_refused_with_apply_statuses_on_the_forge() -> None:
    """Each controller applies its share alone: none can post a whole commit's status."""
    text = fleet_text(2) + (
        "reconciler:\n"
        "  coordination: {kind: etcd, endpoints: ['http://127.0.0.1:2379'], shards: 2}\n"
        "source: {url: 'https://198.18.0.12:3000/ops/fleet.git', token: env:T, reviews: true}\n"
    )
    with pytest.raises(SpecError) as info:
        load_text(text)
    assert [str(p) for p in info.value.problems] == [
        "state/test.yaml:9: reconciler.coordination.shards: expected 1 with source.reviews: "
        "each controller of a sharded fleet applies its share alone, and none can post the "
        "apply status of a whole commit"
    ]


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("0", "greater than or equal to 1, got 0"),
        ("65", "less than or equal to 64, got 65"),
        ("'2'", "a valid integer, got '2'"),
        ("1.5", "a valid integer, got 1.5"),
    ],
)
def test_a_shard_count_out_of_range_is_refused(bad: str, expected: str) -> None:
    text = fleet_text(2) + (
        "reconciler:\n"
        f"  coordination: {{kind: etcd, endpoints: ['http://127.0.0.1:2379'], shards: {bad}}}\n"
    )
    with pytest.raises(SpecError) as info:
        load_text(text)
    assert (
        str(info.value) == f"state/test.yaml:9: reconciler.coordination.shards: expected {expected}"
    )


def test_status_names_each_shards_leader_and_hosts() -> None:
    view = LeaderView(
        None,
        [("c1", 100.0)],
        shards=[ShardView(0, Holder("c1", 0.0, 42), "a" * 64), ShardView(1, None, None)],
    )
    lines = leader_lines(view, 110.0, {"h1": 1, "h2": 0})
    assert lines[0] == "coordination: etcd; 2 shards"
    assert lines[1].startswith("  shard 0 (h2): leader c1 since ")
    assert lines[1].endswith("fencing token 42, spec in force aaaaaaaaaaaa")
    assert lines[2] == "  shard 1 (h1): no leader (its hosts are not watched)"
    assert lines[3] == "  controller c1: last pass 10s ago"
