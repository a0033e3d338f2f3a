"""A controller that does not lead stands by: it campaigns once a probe interval, never
in a busy loop against etcd (a standby once spun at about 500 etcd requests a second,
found by bench.memory)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.coordination.leader import EtcdLeadership, LocalLeadership
from reconciler.daemon.loop import WatchLoop
from reconciler.daemon.spec_source import SpecSource
from reconciler.events.bus import EventBus
from reconciler.store.journal import Journal
from reconciler.untrusted.http import bounded_client
from state.spec.controller import EtcdCoordination
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.unit.test_spec import BASE


class Standby(LocalLeadership):
    """Another controller leads: every campaign is lost, and counted."""

    def __init__(self) -> None:
        self.campaigns = 0

    def campaign(self) -> bool:
        self.campaigns += 1
        return False

    def acting(self) -> bool:
        return False

    def why_not(self) -> str:
        return "ctl-a leads since 12:00:00"


def test_a_standby_campaigns_once_a_probe_interval(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(  # no host is ever reached: a standby observes nothing
        BASE.replace("198.18.0.11", "127.0.0.1\n    ssh_port: 9").replace(
            "198.18.0.12", "127.0.0.1\n    ssh_port: 9"
        )
        + "reconciler:\n  probe_interval: 1s\n"
    )
    journal, bus = Journal(tmp_path / "j.db"), EventBus()
    source = SpecSource(spec, bus, journal)
    assert source.reload()
    standby, said = Standby(), list[str]()
    with bounded_client() as client:
        loop = WatchLoop(
            source, journal, client, bus, said.append, lambda *_: None, leadership=standby
        )
        loop.run(max_seconds=3.5)
    assert 2 <= standby.campaigns <= 5, standby.campaigns
    assert any("standing by: ctl-a leads" in line for line in said), said


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


def test_a_standby_campaigns_just_after_a_dead_leaders_lease_runs_out(
    etcd: Cluster, tmp_path: Path
) -> None:
    """The leader stops renewing (as SIGKILL would leave it): the standby's next
    campaign is timed to the lease's end, so it leads within the ttl and a little, not
    the ttl and a probe interval (30 s here)."""
    settings = EtcdCoordination.model_validate(
        {"kind": "etcd", "endpoints": etcd.endpoints, "prefix": f"/t-{tmp_path.name}",
         "ttl": "4s", "retry_timeout": "1s"}
    )  # fmt: skip
    dead, standby = (EtcdLeadership(settings, n, lambda _line: None) for n in ("a", "b"))
    assert dead.campaign()
    dead.stop.set()  # its keep-alives end; its key stays until the lease runs out
    last_renewal = time.monotonic()
    assert not standby.campaign()
    waits = []
    while not standby.campaign():
        waits.append(standby.next_campaign(30.0))
        assert len(waits) < 20, waits
        time.sleep(waits[-1])
    took = time.monotonic() - last_renewal
    assert took <= 4 + 1, (took, waits)
    assert waits[0] <= 4.1, waits  # not the 30 s probe interval
    standby.close()
