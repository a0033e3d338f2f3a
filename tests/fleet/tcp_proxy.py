"""A TCP proxy on loopback that a test can cut: a partition between one controller and
etcd while everything else still reaches it. Cut, it drops every open connection and
lets new ones hang unanswered (as a dropped link does, not a refusal)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class CuttableProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.cut = threading.Event()
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.open.append(client)
            if self.cut.is_set():
                continue  # held open, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not self.cut.is_set():
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def partition(self) -> None:
        self.cut.set()
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.close()
            self.open.clear()

    def heal(self) -> None:
        self.cut.clear()

    def close(self) -> None:
        self.partition()
        self.server.close()


@contextlib.contextmanager
def proxies(ports: list[int]) -> Iterator[list[CuttableProxy]]:
    made = [CuttableProxy(port) for port in ports]
    try:
        yield made
    finally:
        for proxy in made:
            proxy.close()
