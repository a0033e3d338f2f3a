"""A real etcd cluster for tests and benchmarks: Debian's `etcd-server`, 3 members on
loopback ports, data in a temporary directory; members can be stopped, paused and
started again. Nothing is mocked: the reconciler talks to it over its v3 gateway."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fleet.ports import free_port

ETCD = "/usr/bin/etcd"


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"


@dataclass
class Cluster:
    root: Path
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self, member: Member, state: str = "new") -> None:
        peers = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        log = (self.root / f"{member.name}.log").open("ab")
        member.proc = subprocess.Popen(
            [
                ETCD,
                "--name", member.name,
                "--data-dir", str(self.root / member.name),
                "--listen-client-urls", member.url,
                "--advertise-client-urls", member.url,
                "--listen-peer-urls", f"http://127.0.0.1:{member.peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{member.peer_port}",
                "--initial-cluster", peers,
                "--initial-cluster-state", state,
                "--initial-cluster-token", self.root.name,
                "--heartbeat-interval", "100",
                "--election-timeout", "1000",
            ],
            stdout=log,
            stderr=log,
        )  # fmt: skip

    def stop(self, member: Member) -> None:
        if member.proc is not None and member.proc.poll() is None:
            member.proc.send_signal(signal.SIGCONT)
            member.proc.terminate()
            try:
                member.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                member.proc.kill()
                member.proc.wait()
        member.proc = None

    def restart(self, member: Member) -> None:
        self.start(member, state="existing")

    def healthy(self, timeout: float = 30.0) -> None:
        """Wait until a write goes through (a quorum answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for url in self.endpoints:
                with contextlib.suppress(httpx.HTTPError):
                    answer = httpx.post(
                        f"{url}/v3/kv/put", json={"key": "aGVhbHRo", "value": ""}, timeout=1
                    )
                    if answer.status_code == 200:
                        return
            time.sleep(0.2)
        raise RuntimeError(f"etcd cluster not healthy within {timeout}s; logs in {self.root}")


@contextlib.contextmanager
def etcd_cluster(size: int = 3) -> Iterator[Cluster]:
    if shutil.which(ETCD) is None:
        raise RuntimeError("etcd is not installed: run scripts/setup.sh (Debian's etcd-server)")
    root = Path(tempfile.mkdtemp(prefix="fleet-etcd-"))
    cluster = Cluster(root, [Member(f"m{i}", free_port(), free_port()) for i in range(size)])
    try:
        for member in cluster.members:
            cluster.start(member)
        cluster.healthy()
        yield cluster
    finally:
        for member in cluster.members:
            cluster.stop(member)
        shutil.rmtree(root, ignore_errors=True)
