"""The fleet's memory on a real etcd, with two `watch` controllers on real lab hosts:
what one controller was told, the other knows when it takes over. Nothing is mocked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from state.load import parse_fleet
from state.spec.controller import EtcdCoordination
from tests.fleet import lab as fleet_lab
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.integration.conftest import run_reconcile
from tests.integration.test_leadership import (
    TTL,
    controller,
    coordinated_spec,
    leader,
    ollama_healthy,
    until,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with etcd_cluster(1) as started:
        yield started


def test_a_suspension_outlives_the_leader_that_honoured_it(
    lab: fleet_lab.Lab, cluster: Cluster, tmp_path: Path
) -> None:
    """`suspend` on the leader's machine, a service stopped by hand for maintenance, the
    leader SIGKILLed: the successor leaves the service stopped, and its `status` says
    why; `resume` on the successor's machine heals it."""
    spec = tmp_path / "fleet.yaml"
    spec.write_text(coordinated_spec(lab, cluster, "/memory"))
    settings = parse_fleet(spec.read_text(), spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    done = run_reconcile("--yes", str(spec), "--journal", str(tmp_path / "cli" / "j.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    procs = {"c1": controller("c1", spec, tmp_path)}
    try:
        until(lambda: leader(settings) == "c1", 30)
        procs["c2"] = controller("c2", spec, tmp_path)
        until(lambda: "standing by: c1 leads" in (tmp_path / "c2.log").read_text(), 30)
        c1_journal = str(tmp_path / "c1" / "journal.db")
        said = run_reconcile(
            "suspend", "--reason", "maintenance", str(spec), "--journal", c1_journal
        )
        assert said.returncode == 0 and "kept in etcd" in said.stdout, said.stdout + said.stderr
        fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")
        until(lambda: "suspended (maintenance)" in (tmp_path / "c1.log").read_text(), 30)

        procs["c1"].kill()
        until(lambda: leader(settings) == "c2", TTL + 30)
        until(lambda: "suspended (maintenance)" in (tmp_path / "c2.log").read_text(), 30)
        time.sleep(5)  # five of c2's probe rounds: unsuspended, it heals within two
        assert not ollama_healthy(lab), "the successor restarted a service under maintenance"
        c2_journal = str(tmp_path / "c2" / "journal.db")
        status = run_reconcile("status", str(spec), "--journal", c2_journal)
        assert "applying SUSPENDED since" in status.stdout, status.stdout + status.stderr
        assert "(maintenance)" in status.stdout

        resumed = run_reconcile("resume", str(spec), "--journal", c2_journal)
        assert "applying resumed" in resumed.stdout, resumed.stdout + resumed.stderr
        until(lambda: ollama_healthy(lab), 60)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=60)
