"""`reconcile migrate-store`: one controller's memory moves into etcd (a real one, on
loopback) once, under the leadership, never over what etcd already holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.coordination.etcd import EtcdClient
from reconciler.coordination.etcd_incidents import EtcdIncidents
from reconciler.coordination.etcd_memory import EtcdMemory
from reconciler.coordination.leader import EtcdLeadership
from reconciler.coordination.migration import migrate, migrated
from reconciler.store.incidents import LocalIncidents
from reconciler.store.journal import Journal
from reconciler.store.ledger import Entry, Ledger
from reconciler.store.memory import LocalMemory
from reconciler.store.suspension import Suspension
from state.load import LoadedFleet
from state.spec.controller import EtcdCoordination
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.spec_text import backup_policy
from tests.unit.helpers import load_text
from tests.unit.test_spec import BASE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


def coordinated(etcd: Cluster, prefix: str) -> LoadedFleet:
    return load_text(
        BASE
        + f"reconciler:\n  coordination: {{kind: etcd, endpoints: ['{etcd.endpoints[0]}'], "
        + f"prefix: {prefix}, ttl: 10s, retry_timeout: 2s}}\n"
        + "backups:\n"
        + backup_policy("configs", "kimi", "/srv/restic/configs", "env:RESTIC_PASSWORD")
    )


def single_controller_journal(path: Path, loaded: LoadedFleet) -> Journal:
    journal = Journal(path)
    Suspension(LocalMemory(journal)).suspend("maintenance")
    incidents = LocalIncidents(journal)
    opened = {"id": "INC-1", "fingerprint": "unhealthy:kimi:agent", "status": "open"}
    incidents.put("INC-1", "unhealthy:kimi:agent", "open", {**opened, "last_seen": 1.0})
    incidents.enqueue("INC-1:opened:1:tg", "tg", "INC-1", {"transition": "opened"})
    Ledger(journal).add(loaded.fleet, "configs", Entry("a" * 64, "recorded", "kimi", 0, 1.0, 2.0))
    return journal


def test_a_journal_moves_into_etcd_once(etcd: Cluster, tmp_path: Path) -> None:
    prefix = f"/t-{tmp_path.name}"
    loaded = coordinated(etcd, prefix)
    journal = single_controller_journal(tmp_path / "j.db", loaded)
    settings = loaded.fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    leader = EtcdLeadership(settings, "ctl-a", lambda _line: None)
    assert leader.campaign()
    client = EtcdClient(etcd.endpoints, timeout=5.0)
    EtcdMemory(client, prefix).put("intent/other", '{"kept": true}')  # etcd's stands
    try:
        moved = migrate(loaded, journal, leader)
        assert moved is not None
        assert (moved.keys, moved.incidents, moved.notifications, moved.snapshots) == (1, 1, 1, 1)
        suspended = Suspension(EtcdMemory(client, prefix)).get()
        assert suspended is not None and suspended.reason == "maintenance"
        shared = EtcdIncidents(client, prefix)
        assert shared.open_for("unhealthy:kimi:agent") is not None and shared.pending() == 1
        assert LocalIncidents(journal).pending() == 0  # handed over, never sent twice
        assert client.get(f"{prefix}/shared/ledger/configs") is not None
        assert migrate(loaded, journal, leader) is None  # once
        assert migrated(journal) == moved
        assert [e.kind for e in journal.events(kind="store_migrated")] == ["store_migrated"]
    finally:
        leader.close()
        client.close()


def test_a_fleet_without_etcd_has_nothing_to_move(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = str(ROOT / "state" / "demo.yaml")
    code = main(["migrate-store", demo, "--journal", str(tmp_path / "j.db")])
    assert code != 0
    assert "reconciler.coordination is not etcd" in capsys.readouterr().err
