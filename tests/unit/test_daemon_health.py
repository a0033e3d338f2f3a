"""What a supervisor sees of `reconcile watch`: systemd's watchdog set to the loop's real
stall limit and pinged only on progress, STATUS=, /healthz and /readyz."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from reconciler.daemon.health import readiness, stall_limit, start_watchdog, status_line
from reconciler.daemon.loop_status import LoopStatus
from reconciler.web.app import make_app
from tests.unit.helpers import load_text
from tests.unit.test_spec import BASE


def fake_loop(**fields: Any) -> Any:
    now = time.monotonic()
    loop = SimpleNamespace(
        spec=SimpleNamespace(loaded=object()),
        clock=time.monotonic,
        last_beat=now,
        leadership=SimpleNamespace(),
        leading=True,
        status=LoopStatus(),
        suspended_said="",
        stop=threading.Event(),
    )
    for key, value in fields.items():
        setattr(loop, key, value)
    return loop


def test_the_stall_limit_is_twice_the_largest_rto_plus_ten_minutes() -> None:
    loaded = load_text(BASE)
    largest = max(s.rto.total_seconds() for s in loaded.fleet.services.values())
    assert stall_limit(loaded) == 2 * largest + 600
    assert stall_limit(None) == 600


def test_readiness_says_why_not() -> None:
    assert readiness(fake_loop(), 60) is None
    assert readiness(fake_loop(spec=SimpleNamespace(loaded=None)), 60) == (
        "no valid state file is in force"
    )
    stale = readiness(fake_loop(last_beat=time.monotonic() - 100), 60)
    assert stale is not None and stale.startswith("no progress for 10")
    etcd = fake_loop(leadership=SimpleNamespace(etcd_error="connection refused"))
    assert readiness(etcd, 60) == "etcd unreachable: connection refused"


def test_status_line_says_how_the_fleet_was() -> None:
    loop = fake_loop()
    loop.status.passes, loop.status.last_kind, loop.status.last_pass = 3, "full", time.time()
    loop.status.pending, loop.status.hosts = ["h1/agent"], {"h1": True, "h2": False}
    line = status_line(loop)
    assert line.startswith("leading; 3 passes, last (full) at ")
    assert "1 pending" in line and "unreachable: h2" in line


def test_the_watchdog_is_set_to_the_stall_limit_and_pinged_only_on_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    loop = fake_loop()
    thread = start_watchdog(loop, 0.4)  # pings every 0.1 s while the loop beats
    assert thread is not None
    try:
        assert server.recv(100) == b"WATCHDOG_USEC=400000"
        assert server.recv(100) == b"WATCHDOG=1"  # the beat before the start
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):  # no beat since: no ping
            server.recv(100)
        loop.last_beat = time.monotonic()
        assert server.recv(100) == b"WATCHDOG=1"
    finally:
        loop.stop.set()
        thread.join(timeout=2)
        server.close()


def test_healthz_and_readyz(tmp_path: Path) -> None:
    why: list[str | None] = [None]
    app = make_app(
        tmp_path / "journal.db", tmp_path / "fleet.yaml", lambda: None, CollectorRegistry(),
        ready=lambda: why[0],
    )  # fmt: skip
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    why[0] = "no progress for 700s (the stall limit is 600s)"
    answer = client.get("/readyz")
    assert answer.status_code == 503 and "no progress for 700s" in answer.text
