"""The total deadline and the body cap, against real sockets on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest

from reconciler.hosts.probes import probe_http
from reconciler.untrusted.http import AnswerTooLarge, bounded_client
from reconciler.untrusted.limits import HEALTH_BODY_BYTES
from state.spec.services import HttpCheck

Answer = Callable[[socket.socket], None]


@contextmanager
def server(answer: Answer) -> Iterator[int]:
    """A one-thread HTTP server on loopback that answers every connection with `answer`
    (after reading the request); it stops with the block."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                with contextlib.suppress(OSError):  # the client gave up: that is the point
                    answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def drip_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    for _ in range(100):
        conn.sendall(b"x")
        time.sleep(0.1)


def drip_headers(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 100:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def huge(conn: socket.socket) -> None:
    size = 5 << 20
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    chunk = b"{" * 65536
    for _ in range(size // len(chunk)):
        conn.sendall(chunk)


def gzipped(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n")


def check(port: int, seconds: int = 1, json_key: str | None = None) -> HttpCheck:
    return HttpCheck(
        kind="http",
        url=f"http://{{address}}:{port}/",
        timeout=timedelta(seconds=seconds),
        json_key=json_key,
    )


@pytest.mark.parametrize("answer", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_dripping_answer_ends_at_the_checks_deadline(answer: Answer) -> None:
    with server(answer) as port, bounded_client() as client:
        started = time.monotonic()
        result = probe_http(client, check(port), "127.0.0.1")
        took = time.monotonic() - started
    assert not result.healthy and "Timeout" in result.detail
    # Ended by the 1 s deadline, not by the drip's 10 s (how fast is bench/bounds.py's).
    assert took < 6, f"{took:.2f}s for a 1s deadline"


def test_plain_httpx_does_not_bound_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the transport exists: httpx's timeout is per read (this would run 10 s)."""
    with server(drip_body) as port, httpx.Client(trust_env=False) as client:
        started = time.monotonic()
        with client.stream("GET", f"http://127.0.0.1:{port}/", timeout=1) as response:
            for _ in response.iter_raw():
                if time.monotonic() - started > 2:
                    break
    assert time.monotonic() - started > 2


def test_a_huge_answer_is_refused_past_the_cap() -> None:
    with (
        server(huge) as port,
        bounded_client(max_body=1 << 20) as client,
        pytest.raises(AnswerTooLarge),
    ):
        client.get(f"http://127.0.0.1:{port}/", timeout=5)


def test_a_probe_reads_only_what_a_check_needs() -> None:
    with server(huge) as port, bounded_client() as client:
        status_only = probe_http(client, check(port, 5), "127.0.0.1")
        with_json = probe_http(client, check(port, 5, json_key="models"), "127.0.0.1")
    assert status_only.healthy
    assert not with_json.healthy
    assert f"larger than {HEALTH_BODY_BYTES} bytes" in with_json.detail


def test_a_compressed_answer_is_refused() -> None:
    with (
        server(gzipped) as port,
        bounded_client() as client,
        pytest.raises(httpx.DecodingError, match="compressed"),
    ):
        client.get(f"http://127.0.0.1:{port}/", timeout=5)
