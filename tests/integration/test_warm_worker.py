"""The warm SSH worker on real hosts: one connection per host kept across requests, a fresh
one after the host dropped it, and a new worker after the old one crashed or hung.

Nothing is mocked: the worker is the real child process, the connections are real SSH to
nspawn hosts, and the failures are real (sshd sessions killed, SIGKILL, SIGSTOP).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.errors import ObserveError
from reconciler.hosts.client import WarmWorker
from reconciler.hosts.observe import ObserveSettings, observe, observe_request
from reconciler.hosts.protocol import ObserveAnswer, RequestEnvelope
from state.load import LoadedFleet, load_fleet
from state.placement import without_host
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec, workers_of

HEALTH = ObserveSettings(health_only=True)


@pytest.fixture
def loaded(lab: fleet_lab.Lab, tmp_path: Path) -> LoadedFleet:
    path = tmp_path / "fleet.yaml"
    path.write_text(lab_spec(lab))
    return load_fleet(path)


@pytest.fixture
def worker() -> Iterator[WarmWorker]:
    warm = WarmWorker()
    try:
        yield warm
    finally:
        warm.close()


def connections(lab: fleet_lab.Lab, pid: int) -> set[str]:
    """Local ends of the SSH connections process `pid` holds to the lab's hosts."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dport", "= :22"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    addresses = {h.address for h in lab.hosts}
    return {
        line.split()[2]
        for line in out.splitlines()
        if f"pid={pid}," in line and line.split()[3].rsplit(":", 1)[0] in addresses
    }


def test_connections_are_kept_across_requests(
    lab: fleet_lab.Lab, loaded: LoadedFleet, worker: WarmWorker
) -> None:
    with httpx.Client() as client:
        first = observe(loaded, client, HEALTH, worker)
        (pid,) = workers_of(os.getpid())
        kept = connections(lab, pid)
        for _ in range(5):
            again = observe(loaded, client, None, worker)
            assert all(h.reachable for h in again.hosts.values())
    assert all(h.reachable for h in first.hosts.values())
    assert len(kept) == 2  # one per host
    assert connections(lab, pid) == kept  # the same two connections, six requests later
    assert worker.starts == 1


def test_a_connection_cut_on_the_host_is_replaced_by_a_new_one(
    lab: fleet_lab.Lab, loaded: LoadedFleet, worker: WarmWorker
) -> None:
    with httpx.Client() as client:
        assert observe(loaded, client, HEALTH, worker).hosts["h2"].reachable
        (pid,) = workers_of(os.getpid())
        before = connections(lab, pid)
        # Every SSH session on h2 killed (as a restarted host or a firewall reset does).
        fleet_lab.ssh(lab, "h2", "pkill -KILL -f 'sshd: root'", check=False)
        after = observe(loaded, client, HEALTH, worker)
    assert after.hosts["h2"].reachable, after.hosts["h2"].error
    assert after.hosts["h1"].reachable
    now = connections(lab, pid)
    assert len(now) == 2 and len(now & before) == 1  # h1's kept, h2's new
    assert worker.starts == 1  # the same worker process did it


def test_a_killed_worker_is_replaced_by_the_next_request(
    loaded: LoadedFleet, worker: WarmWorker
) -> None:
    with httpx.Client() as client:
        observe(loaded, client, HEALTH, worker)
        (pid,) = workers_of(os.getpid())
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        again = observe(loaded, client, HEALTH, worker)
    assert all(h.reachable for h in again.hosts.values())
    assert worker.starts == 2
    assert pid not in workers_of(os.getpid())


def test_a_hung_worker_fails_its_request_and_the_next_gets_a_new_one(
    loaded: LoadedFleet, worker: WarmWorker
) -> None:
    request = observe_request(loaded.fleet, HEALTH)
    worker.call(request, ObserveAnswer, 30)
    (pid,) = workers_of(os.getpid())
    os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing
    started = time.monotonic()
    with pytest.raises(ObserveError, match="no answer within 2s"):
        worker.call(request, ObserveAnswer, 2)
    assert time.monotonic() - started < 30  # it ends: the hung worker would never answer
    answer = worker.call(request, ObserveAnswer, 30)
    assert all(h.reachable for h in answer.hosts.values())
    assert pid not in workers_of(os.getpid())  # the hung one was killed
    assert worker.starts == 2


def test_a_host_that_left_the_fleet_is_disconnected_by_the_next_full_observation(
    lab: fleet_lab.Lab, loaded: LoadedFleet, worker: WarmWorker
) -> None:
    full = ObserveSettings()
    worker.call(observe_request(loaded.fleet, full), ObserveAnswer, 30)
    (pid,) = workers_of(os.getpid())
    both = connections(lab, pid)
    assert len(both) == 2
    smaller = without_host(loaded.fleet, "h2")
    # A probe pass may leave a host out (a lost primary): its connection stays.
    worker.call(observe_request(smaller, HEALTH), ObserveAnswer, 30)
    assert len(connections(lab, pid)) == 2
    # The whole fleet observed without h2: h2 left the spec, so does its connection.
    worker.call(observe_request(smaller, full), ObserveAnswer, 30)
    remaining = connections(lab, pid)
    assert len(remaining) == 1 and remaining < both  # h1's, kept
    assert worker.starts == 1


def test_a_worker_is_retired_after_its_share_of_requests_and_replaced(
    lab: fleet_lab.Lab, loaded: LoadedFleet
) -> None:
    """Bounded growth: after `recycle_after` requests the worker exits (closing its
    connections) and the next request gets a new worker and new connections."""
    request = observe_request(loaded.fleet, HEALTH)
    worker = WarmWorker(recycle_after=3)
    try:
        worker.call(request, ObserveAnswer, 30)
        (first,) = workers_of(os.getpid())
        kept = connections(lab, first)
        for _ in range(2):
            worker.call(request, ObserveAnswer, 30)
        assert first not in workers_of(os.getpid())  # retired after its third answer
        answer = worker.call(request, ObserveAnswer, 30)
        (second,) = workers_of(os.getpid())
        assert all(h.reachable for h in answer.hosts.values())
        assert second != first and worker.starts == 2 and worker.served == 1
        assert len(connections(lab, second)) == 2 and not connections(lab, second) & kept
    finally:
        worker.close()


KEPT_CHANNELS_PROBE = """
import json, sys
import reconciler.hosts.worker as worker
from reconciler.hosts import session
from reconciler.hosts.protocol import RequestEnvelope

session.CHANNELS_REMEMBERED = 8
kept = session.KeptConnections()
request = RequestEnvelope.model_validate_json(sys.stdin.read()).request
first = None
for _ in range(30):
    answer = worker.answer(request, kept)
    assert all(h.reachable for h in answer.hosts.values()), answer
    clients = {name: client for name, (_, client) in kept.clients.items()}
    first = first or clients
seen = {name: len(c.get_transport().channels_seen) for name, c in clients.items()}
print(json.dumps({"seen": seen, "same": all(clients[n] is first[n] for n in first)}))
"""


def test_a_kept_connection_forgets_old_channels(lab: fleet_lab.Lab, loaded: LoadedFleet) -> None:
    """paramiko records every channel a transport opened (paramiko#1685): two a pass, for
    ever, on a kept connection. Between passes the record is trimmed to the newest few.
    The worker's code runs in a child (it patches with gevent) so the record can be read."""
    request = RequestEnvelope(request=observe_request(loaded.fleet, ObserveSettings()))
    done = subprocess.run(
        [sys.executable, "-c", KEPT_CHANNELS_PROBE],
        input=request.model_dump_json(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["same"]  # 30 requests over the same two connections
    # 60 channels opened on each; the newest 8 remembered, plus this pass's own.
    assert set(found["seen"]) == {"h1", "h2"}
    assert all(8 <= n <= 10 for n in found["seen"].values()), found
