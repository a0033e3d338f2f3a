"""Several controllers, one leader, on a real 3-member etcd cluster (Debian's
etcd-server on loopback ports) and, for fencing, real lab hosts. Nothing is mocked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.apply.fencing_token import claim_token, refused
from reconciler.coordination.leader import EtcdLeadership
from state.load import parse_fleet
from state.models import EtcdCoordination
from tests.fleet import lab as fleet_lab
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.integration.conftest import lab_spec

TTL, RETRY = 4, 1


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with etcd_cluster(3) as started:
        yield started


def leadership(cluster: Cluster, name: str, prefix: str) -> EtcdLeadership:
    settings = EtcdCoordination(
        kind="etcd",
        endpoints=cluster.endpoints,
        prefix=prefix,
        ttl=timedelta(seconds=TTL),
        retry_timeout=timedelta(seconds=RETRY),
    )
    return EtcdLeadership(settings, name, lambda _line: None)


def until(check: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


def test_one_leader_and_a_takeover_within_the_ttl(cluster: Cluster) -> None:
    a, b = leadership(cluster, "a", "/t1"), leadership(cluster, "b", "/t1")
    try:
        assert a.campaign() and a.token is not None
        assert not b.campaign() and b.why_not().startswith("a leads since")
        # a dies without a word: its keep-alives stop (as under SIGKILL), its key stays
        # until the lease runs out; then b is elected with a higher token.
        a.stop.set()
        died = time.monotonic()
        until(lambda: b.campaign(), TTL + 2)
        assert time.monotonic() - died <= TTL + 1.5
        assert b.token is not None and b.token > a.token
        # a, back, is no longer acting and cannot write shared state with its old token.
        assert not a.acting()
        assert not a.client.put_if_created_at(a.leader_key, a.token, "/t1/shared/x", b"old")
        assert b.shared_put("x", "new") and b.shared_get("x") == "new"
    finally:
        a.client.close()
        b.close()


def test_a_clean_exit_hands_over_at_once(cluster: Cluster) -> None:
    a, b = leadership(cluster, "a", "/t2"), leadership(cluster, "b", "/t2")
    try:
        assert a.campaign()
        a.close()
        assert b.campaign(), b.why_not()
    finally:
        b.close()


def test_quorum_lost_nobody_acts_and_work_resumes_when_it_is_back(cluster: Cluster) -> None:
    a, b = leadership(cluster, "a", "/t3"), leadership(cluster, "b", "/t3")
    try:
        assert a.campaign()
        for member in cluster.members[1:]:
            cluster.stop(member)
        # The keep-alive thread's renewals fail; the leader stops acting once its last
        # confirmed renewal is ttl - retry_timeout old: before its lease (ttl) can expire
        # and anyone else could be elected.
        until(lambda: not a.acting(), 4 * TTL)
        age = time.monotonic() - a.renewed
        assert TTL - RETRY - 0.2 <= age < TTL, age
        assert not b.campaign() and not a.campaign()
        assert "no endpoint answered" in a.why_not() or "stepped down" in a.why_not()
        for member in cluster.members[1:]:
            cluster.restart(member)
        cluster.healthy()
        until(lambda: a.campaign() or b.campaign(), 3 * TTL)
        assert a.acting() != b.acting()
    finally:
        a.close()
        b.close()


def test_a_host_refuses_a_lower_fencing_token_and_logs_each_accepted_one(
    lab: fleet_lab.Lab,
) -> None:
    fleet = parse_fleet(lab_spec(lab), Path("state/test.yaml")).fleet
    h1 = {"h1": fleet.hosts["h1"]}
    fleet_lab.ssh(lab, "h1", "rm -f /var/lib/fleet-reconciler/fence/controller-*")
    assert claim_token(h1, 7, "c1")["h1"].ok
    assert claim_token(h1, 7, "c1")["h1"].ok  # the same leader again
    lower = claim_token(h1, 6, "c0")["h1"]
    assert refused(lower), lower
    assert claim_token(h1, 9, "c2")["h1"].ok
    log = fleet_lab.ssh(lab, "h1", "cat /var/lib/fleet-reconciler/fence/controller.log")
    assert [line.split()[1:] for line in log.splitlines()] == [
        ["7", "c1"],
        ["7", "c1"],
        ["9", "c2"],
    ]
