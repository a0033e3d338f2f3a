"""A controller that does not lead stands by: it campaigns once a probe interval, never
in a busy loop against etcd (a standby once spun at about 500 etcd requests a second,
found by bench.memory)."""

from __future__ import annotations

from pathlib import Path

from reconciler.coordination.leader import LocalLeadership
from reconciler.daemon.loop import WatchLoop
from reconciler.daemon.spec_source import SpecSource
from reconciler.events.bus import EventBus
from reconciler.store.journal import Journal
from reconciler.untrusted.http import bounded_client
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
