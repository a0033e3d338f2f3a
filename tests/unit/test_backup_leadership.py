"""With etcd, `reconcile backup` actions that write (now, copy, forget, restore,
rotate-key) take the leadership for their run, as `reconcile --yes` does: while another
controller leads they wait `--lock-timeout`, then refuse naming the holder, before any
repository or host is touched. `check` and `drill` only read and do not wait. A review
that posts its plan to the forge takes it too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.coordination.choice import leadership_for
from state.load import load_fleet
from state.spec.controller import EtcdCoordination
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.spec_text import backup_policy
from tests.unit.test_spec import BASE


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


def coordinated(etcd: Cluster, tmp_path: Path) -> Path:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(  # kimi on a closed loopback port: nothing outside is ever tried
        BASE.replace("198.18.0.11", "127.0.0.1\n    ssh_port: 9")
        + "reconciler:\n"
        + f"  coordination: {{kind: etcd, endpoints: ['{etcd.endpoints[0]}'], "
        + f"prefix: /t-{tmp_path.name}}}\n"
        + "backups:\n"
        + backup_policy("configs", "kimi", "/srv/restic/configs", "env:RESTIC_PASSWORD")
    )
    return spec


@pytest.mark.parametrize("action", ["now", "forget", "rotate-key"])
def test_a_backup_that_writes_waits_for_the_leader_then_names_it(
    etcd: Cluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
) -> None:
    monkeypatch.setenv("RESTIC_PASSWORD", "unit-test-password")
    spec = coordinated(etcd, tmp_path)
    settings = load_fleet(spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    held = leadership_for(settings, "ctl-a", lambda _: None)
    assert held.campaign()
    try:
        code = main(
            ["backup", action, "configs", "--state", str(spec), "--lock-timeout", "1",
             "--journal", str(tmp_path / "j.db"), "--yes"]
        )  # fmt: skip
    finally:
        held.close()
    err = capsys.readouterr().err
    assert code == 1, err
    assert "ctl-a leads since" in err, err


def test_a_check_reads_without_waiting_for_the_leader(
    etcd: Cluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESTIC_PASSWORD", "unit-test-password")
    spec = coordinated(etcd, tmp_path)
    settings = load_fleet(spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    held = leadership_for(settings, "ctl-a", lambda _: None)
    assert held.campaign()
    try:
        code = main(
            ["backup", "check", "configs", "--state", str(spec), "--lock-timeout", "30",
             "--journal", str(tmp_path / "j.db")]
        )  # fmt: skip
    finally:
        held.close()
    err = capsys.readouterr().err
    assert code == 1 and "leads since" not in err, err  # it went on to the host, and failed there
    assert "127.0.0.1" in err, err


def test_a_review_posts_only_as_the_leader_else_names_it(
    etcd: Cluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With etcd, the leader's watch posts reviews on the webhook: a person's `review`
    that would post beside it waits `--lock-timeout`, then refuses naming the leader,
    before Gitea or a host is asked anything."""
    monkeypatch.setenv("FORGE_TOKEN", "unit-test-token")
    spec = coordinated(etcd, tmp_path)
    spec.write_text(
        spec.read_text() + "source: {url: 'http://127.0.0.1:9/ops/fleet.git', "
        "token: env:FORGE_TOKEN, reviews: true}\n"
    )
    settings = load_fleet(spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    held = leadership_for(settings, "ctl-a", lambda _: None)
    assert held.campaign()
    try:
        code = main(["review", "7", str(spec), "--lock-timeout", "0.5",
                     "--journal", str(tmp_path / "j.db")])  # fmt: skip
    finally:
        held.close()
    err = capsys.readouterr().err
    assert code == 1, err
    assert "review #7: not posted: ctl-a leads since" in err, err
    assert "--no-post prints the plan here" in err, err
