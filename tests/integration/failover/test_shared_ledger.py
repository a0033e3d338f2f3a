"""Two controllers on etcd and a failover pair: the leader records the primary's
snapshot and dies (SIGKILL); the primary is cut before its successor's first pass. The
successor has never heard from the primary, and fails over with that snapshot's data:
the ledger is the fleet's, not one controller's (a third machine's `backup list` shows
it too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.coordination.etcd import EtcdClient
from state.layout import backup_path
from state.load import load_fleet
from state.spec.controller import EtcdCoordination
from tests.fleet import lab as fleet_lab
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.integration.conftest import agent_rows, run_reconcile
from tests.integration.failover.conftest import active
from tests.integration.test_leadership import RETRY, TTL, controller, leader, until


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with etcd_cluster(1) as started:
        yield started


def test_a_successor_fails_over_with_the_snapshot_its_predecessor_recorded(
    lab: fleet_lab.Lab, pair: Path, cluster: Cluster, tmp_path: Path
) -> None:
    spec = pair
    rows_before = agent_rows(lab, "h1")
    reported = fleet_lab.ssh(lab, "h1", f"cat {backup_path('agentdata', 'last')}").split()[0]
    spec.write_text(
        spec.read_text()
        + f"  coordination: {{kind: etcd, endpoints: [{', '.join(cluster.endpoints)}], "
        + f"prefix: /ledger, ttl: {TTL}s, retry_timeout: {RETRY}s}}\n"
    )
    settings = load_fleet(spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    client = EtcdClient(settings.endpoints, timeout=5.0)

    def shared_ledger() -> str:
        found = client.get("/ledger/shared/ledger/agentdata")
        return found.value.decode() if found else ""

    procs = {"c1": controller("c1", spec, tmp_path)}
    try:
        until(lambda: leader(settings) == "c1", 30)
        until(lambda: reported[:8] in shared_ledger(), 90)  # c1 recorded it, and shared it
        # Another machine's `backup list` shows the fleet's ledger, not its own (empty).
        listed = run_reconcile(
            "backup", "list", "agentdata", str(spec), "--journal", str(tmp_path / "other.db")
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "snapshot(s) recorded by the leader" in listed.stderr, listed.stderr
        line = next(x for x in listed.stdout.splitlines() if reported[:8] in x)
        assert line.rstrip().endswith("recorded"), listed.stdout
        procs["c2"] = controller("c2", spec, tmp_path)
        until(lambda: "standing by: c1 leads" in (tmp_path / "c2.log").read_text(), 30)
        procs["c1"].kill()
        fleet_lab.cut_link(lab, "h1")  # before c2's first pass: c2 never hears from h1
        until(lambda: active(lab, "h2", "agent"), 150)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=60)
        client.close()
    said = (tmp_path / "c2.log").read_text()
    assert "snapshot(s) recorded by the last leader" in said, said[-4000:]
    restored = agent_rows(lab, "h2")
    assert restored and restored[0] == rows_before[0], (rows_before[:3], restored[:3])
