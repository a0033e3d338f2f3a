"""Failover on real hosts: h1 is the primary, h2 the backup, the controller is this
machine (the lab's gateway), a third party to both.

Each file here boots its own pair, so the files can run on parallel workers.

Times are the test's short ones (grace 20 s, fence_after 14 s, probes every 2 s). The
order of events is proven from the hosts' own systemd (monotonic timestamps: the hosts
share this kernel's clock), and the data from the SQLite rows on each host.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import (
    booted_lab,
    failover_spec,
    reset_failover_pair,
    run_reconcile,
    start_reconcile,
)

PASSWORD = "failover-test-only"


@pytest.fixture(scope="module")
def lab() -> Iterator[fleet_lab.Lab]:
    """Hosts that keep their disk across a reboot (the primary reboots while failed over)."""
    yield from booted_lab(persistent=True)


@pytest.fixture
def pair(lab: fleet_lab.Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A converged pair with a fresh journal (and hosts that forgot earlier epochs)."""
    monkeypatch.setenv("RESTIC_PASSWORD", PASSWORD)
    reset_failover_pair(lab)
    spec = tmp_path / "fleet.yaml"
    spec.write_text(failover_spec(lab))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal_path(spec)))
    assert done.returncode == 0, done.stdout + done.stderr + _units_said(lab)
    assert active(lab, "h1", "agent")
    yield spec
    for host in ("h1", "h2"):
        fleet_lab.restore_link(lab, host)
        fleet_lab.restore_route(lab, host, lab.gateway)


def _units_said(lab: fleet_lab.Lab) -> str:
    """What h1's guarded units and its fence said: why a start there was refused."""
    said = fleet_lab.ssh(
        lab,
        "h1",
        "journalctl -u agent -u fleet-backup-agentdata -n 25 --no-pager -o cat; "
        "ls -l /var/lib/fleet-reconciler/fence; cat /var/lib/fleet-reconciler/fence/*; date +%s",
        check=False,
    )
    return f"\n--- h1 ---\n{said}"


def journal_path(spec: Path) -> Path:
    return spec.parent / "journal.db"


def active(lab: fleet_lab.Lab, host: str, unit: str) -> bool:
    answer = fleet_lab.ssh(lab, host, f"systemctl is-active {unit}", check=False)
    return answer.strip() == "active"


def monotonic_us(lab: fleet_lab.Lab, host: str, unit: str, prop: str) -> int:
    return int(fleet_lab.ssh(lab, host, f"systemctl show -P {prop} {unit}").strip() or 0)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return time.time()
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds:g}s: {what}")


def watched_until(
    loop: subprocess.Popen[str],
    condition: Callable[[], bool],
    seconds: float,
    what: str,
    then: float = 0.0,
) -> str:
    """Wait for `condition` while `loop` runs, let it run `then` seconds more, then stop
    it; its output is in the failure."""
    try:
        wait_for(condition, seconds, what)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{stop(loop)}") from None
    time.sleep(then)
    return stop(loop)


_WATCHES: list[subprocess.Popen[str]] = []


def watch(spec: Path, seconds: float) -> subprocess.Popen[str]:
    """A bounded `reconcile watch` of the pair; stopped at the test's end if the test
    did not stop it (a failed test's loop must not act on the next test's pair)."""
    loop = start_reconcile(
        "watch",
        str(spec),
        "--journal",
        str(journal_path(spec)),
        "--max-seconds",
        str(seconds),
        capture=True,
    )
    _WATCHES.append(loop)
    return loop


@pytest.fixture(autouse=True)
def _no_watch_outlives_its_test() -> Iterator[None]:
    yield
    while _WATCHES:
        loop = _WATCHES.pop()
        if loop.poll() is None:
            loop.kill()
        loop.communicate()


def finish(process: subprocess.Popen[str]) -> str:
    """The output of a bounded `watch`, once it has stopped by itself."""
    out, err = process.communicate(timeout=180)
    return out + err


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the loop did not stop within 120s of SIGTERM:\n{out}{err}") from None
    return out + err


def placement(spec: Path) -> dict[str, object]:
    """Where the services run and in which epoch (not when the move committed)."""
    row = Journal(journal_path(spec)).db.execute("SELECT data FROM failover").fetchone()
    data: dict[str, object] = json.loads(row[0])["placement"]
    return {"active": data.get("active"), "epoch": data.get("epoch")}
