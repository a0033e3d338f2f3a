"""Leadership: which controller may act, and its fencing token.

`LocalLeadership` (one controller; the journal's host locks keep one-shot runs and the
daemon apart) always acts and has no token.

`EtcdLeadership` is Patroni's scheme on etcd: a lease of `ttl`, then a transaction
that creates the leader key only if it does not exist (`create_revision == 0`), then
keep-alives from a thread. The leader key's create revision is the fencing token.
The controller acts only while its last confirmed renewal is younger than
`ttl - retry_timeout`: a leader that cannot renew stops acting before its lease (and
so its key) can expire and another controller can be elected. Each controller also
keeps `PREFIX/controllers/NAME` (its last pass) under its own lease, for `status`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.coordination.etcd import EtcdClient, EtcdUnavailable, KeyValue
from reconciler.coordination.etcd_memory import EtcdMemory
from reconciler.errors import TemporaryError
from state.load import LoadedFleet
from state.spec.controller import EtcdCoordination

RENEWED_WITHIN_S = 1.0


class NotLeader(TemporaryError):
    """This controller may not act now (another leads, or etcd cannot confirm it)."""


@dataclass(frozen=True)
class Holder:
    name: str
    since: float
    token: int


class LocalLeadership:
    name = "local"
    token: int | None = None

    def acting(self) -> bool:
        return True

    def campaign(self) -> bool:
        return True

    def why_not(self) -> str:
        return ""

    def shared_put(self, key: str, value: str, host: str | None = None) -> bool:
        return True

    def fence(self, host: str | None = None) -> tuple[str, int | None]:
        return "", None  # one controller: its stores are its journal, never fenced

    def memory(self, host: str | None = None) -> EtcdMemory | None:
        return None  # one controller: what it keeps in its journal is the fleet's

    def shared_get(self, key: str, host: str | None = None) -> str | None:
        return None

    def follow(self, loaded: LoadedFleet) -> dict[str, int]:
        return {}

    def scope(self, loaded: LoadedFleet) -> LoadedFleet:
        return loaded

    def tokens_for(self, loaded: LoadedFleet, hosts: list[str]) -> dict[int, list[str]]:
        return {}

    def regrouped(self) -> bool:
        return False

    def next_campaign(self, interval: float) -> float:
        return interval

    def note_pass(self, at: float) -> None:
        pass

    def step_down(self, why: str) -> None:
        pass

    def close(self) -> None:
        pass


class EtcdLeadership:
    def __init__(
        self,
        settings: EtcdCoordination,
        name: str,
        report: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.name, self.report, self.clock = settings, name, report, clock
        self.ttl = int(settings.ttl.total_seconds())
        self.retry = settings.retry_timeout.total_seconds()
        self.client = EtcdClient(settings.endpoints, timeout=self.retry)
        self.prefix = settings.prefix.rstrip("/")
        self.lease = 0
        self.token: int | None = None
        self.renewed = float("-inf")  # monotonic start of the last confirmed renewal
        self.since = 0.0
        self.problem = "not elected yet"
        self.etcd_error: str | None = None  # the last campaign's, for /readyz
        self.lock = threading.Lock()
        self.renewing = threading.RLock()  # the loop and the keep-alive thread
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.registers = True  # keeps PREFIX/controllers/NAME: counted among the controllers
        self.holder_lease = 0  # the leader's lease, as this standby last saw it

    @property
    def leader_key(self) -> str:
        return f"{self.prefix}/leader"

    def acting(self) -> bool:
        """Leader, with a renewal confirmed less than `ttl - retry_timeout` ago."""
        with self.lock:
            fresh = self.clock() - self.renewed < self.ttl - self.retry
            return self.token is not None and fresh

    def why_not(self) -> str:
        return self.problem

    def memory(self, host: str | None = None) -> EtcdMemory | None:
        """The fleet's memory as this controller writes it: only under its token (with
        shards, for a `host`'s keys, the token of that host's shard)."""
        return EtcdMemory(self.client, self.prefix, lambda: self.fence(host))

    def fence(self, host: str | None = None) -> tuple[str, int | None]:
        """The leader key and this controller's token while it acts (None otherwise):
        the fleet's memory writes only while that key still has that token."""
        with self.lock:
            token = self.token
        return self.leader_key, token if token is not None and self.acting() else None

    def campaign(self) -> bool:
        """Renew, or try to become leader; whether this controller may act now. A
        leader renewed within the last second is not renewed again (a sliced probe
        round calls this once a slice; the keep-alive thread renews meanwhile)."""
        started = self.clock()
        try:
            if self.token is None or started - self.renewed >= RENEWED_WITHIN_S:
                self._renew(started)
            if self.token is None:
                self._elect(started)
            self.etcd_error = None
        except EtcdUnavailable as exc:
            self.etcd_error = str(exc)
            self.problem = f"{exc} (not acting)"
            if self.token is not None and not self.acting():
                self.step_down("leader key not renewed within ttl - retry_timeout")
        self._keep_alive_in_background()
        return self.acting()

    def _renew(self, started: float) -> None:
        with self.renewing:
            self._renew_held(started)

    def _renew_held(self, started: float) -> None:
        if not self.lease:
            self.lease = self.client.grant(self.ttl)
            if self.registers:
                self.client.put(self._controller_key(), self._controller_value(None), self.lease)
            with self.lock:
                self.renewed = started
            return
        if self.client.keepalive(self.lease) <= 0:
            self.lease = 0
            if self.token is not None:
                self.step_down("its etcd lease expired (paused or cut off past the ttl)")
            self._renew_held(started)
            return
        with self.lock:
            self.renewed = started

    def _elect(self, started: float) -> None:
        value = json.dumps({"name": self.name, "since": time.time()}).encode()
        created, revision, holder = self.client.create(self.leader_key, value, self.lease)
        if created:
            with self.lock:
                self.token, self.renewed, self.since = revision, started, time.time()
            self.problem = ""
            self.report(f"leader: {self.name} leads (fencing token {revision})")
        elif holder is not None and holder.lease == self.lease:
            # Our own key outlived an etcd outage (a new etcd leader extends leases): no
            # one else was elected meanwhile, so it is still ours, with the same token.
            with self.lock:
                self.token, self.renewed = holder.create_revision, started
            self.problem = ""
            self.report(f"leader: {self.name} leads again (fencing token {self.token})")
        else:
            found = describe(holder)
            self.problem = f"{found.name} leads since {_at(found.since)}" if found else "no leader"
            self.holder_lease = holder.lease if holder is not None else 0

    def next_campaign(self, interval: float) -> float:
        """Seconds until a standby campaigns again: the probe interval, or sooner, just
        after the leader's lease would run out unrenewed (so a dead leader is replaced
        within its ttl, not its ttl and a probe interval). One `timetolive` request."""
        if not self.holder_lease or self.token is not None:
            return interval
        try:
            left = self.client.time_to_live(self.holder_lease)
        except EtcdUnavailable:
            return interval
        return min(interval, left + 0.05 if left > 0 else 0.25)

    def step_down(self, why: str) -> None:
        if self.token is None:
            return
        token = self.token
        with self.lock:
            self.token = None
        self.problem = f"stepped down: {why}"
        self.report(f"leader: {self.name} steps down (token {token}): {why}")
        with contextlib.suppress(EtcdUnavailable):
            self.client.delete_if_created_at(self.leader_key, token)

    def _keep_alive_in_background(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return

        def loop() -> None:
            while not self.stop.wait(max(0.5, (self.ttl - self.retry) / 3)):
                try:
                    self._renew(self.clock())
                except EtcdUnavailable as exc:
                    self.problem = f"{exc} (not acting)"

        self.thread = threading.Thread(target=loop, name="etcd-keepalive", daemon=True)
        self.thread.start()

    def follow(self, loaded: LoadedFleet) -> dict[str, int]:
        """Each host's shard in `loaded`: none, with one leader for the whole fleet."""
        return {}

    def scope(self, loaded: LoadedFleet) -> LoadedFleet:
        """What this controller acts on: the whole fleet (one leader)."""
        return loaded

    def tokens_for(self, loaded: LoadedFleet, hosts: list[str]) -> dict[int, list[str]]:
        """The fencing token to claim on each of `hosts`, grouped by token."""
        return {self.token: hosts} if self.token is not None else {}

    def regrouped(self) -> bool:
        """Whether what this controller leads changed since the last call (never here:
        becoming the leader is told by `campaign`)."""
        return False

    def shared_put(self, key: str, value: str, host: str | None = None) -> bool:
        """Write shared state, only while this controller's token still holds."""
        token = self.token
        if token is None or not self.acting():
            return False
        full = f"{self.prefix}/shared/{key}"
        try:
            done = self.client.put_if_created_at(self.leader_key, token, full, value.encode())
        except EtcdUnavailable as exc:
            self.problem = f"{exc} (shared state not written)"
            return False
        if not done:
            self.step_down("the etcd transaction refused its token (another controller leads)")
        return done

    def shared_get(self, key: str, host: str | None = None) -> str | None:
        found = self.client.get(f"{self.prefix}/shared/{key}")
        return found.value.decode() if found else None

    def note_pass(self, at: float) -> None:
        if self.lease and self.registers:
            with contextlib.suppress(EtcdUnavailable):
                self.client.put(self._controller_key(), self._controller_value(at), self.lease)

    def _controller_key(self) -> str:
        return f"{self.prefix}/controllers/{self.name}"

    def _controller_value(self, last_pass: float | None) -> bytes:
        return json.dumps({"name": self.name, "last_pass": last_pass}).encode()

    def close(self) -> None:
        """Leave: stop renewing and give the key up at once (a clean exit)."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=self.retry + 1)
        self.step_down("controller stopping")
        if self.lease:
            with contextlib.suppress(EtcdUnavailable):
                self.client.revoke(self.lease)
        self.client.close()


def describe(holder: KeyValue | None) -> Holder | None:
    if holder is None:
        return None
    data = json.loads(holder.value or b"{}")
    return Holder(str(data.get("name", "?")), float(data.get("since", 0)), holder.create_revision)


def _at(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


Leadership = LocalLeadership | EtcdLeadership


def controller_name(given: str | None, role: str) -> str:
    """This controller's name in etcd and in the hosts' logs: a plain word."""
    name = given or f"{socket.gethostname()}-{role}-{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9.-]", "-", name)[:60]


def wait_to_lead(leadership: Leadership, timeout: float, step: float = 0.5) -> None:
    """Campaign until leading, or raise NotLeader naming the holder (one-shot runs)."""
    deadline = time.monotonic() + timeout
    while not leadership.campaign():
        if time.monotonic() >= deadline:
            raise NotLeader(f"not applying: {leadership.why_not()}")
        time.sleep(step)


@dataclass(frozen=True)
class LeaderView:
    """What `status` shows of the coordination: who leads, and each controller's last pass."""

    holder: Holder | None
    controllers: list[tuple[str, float | None]]
    error: str = ""
    spec_sha: str | None = None  # the spec the leader last had in force
    shards: list[ShardView] = field(default_factory=list)  # a sharded fleet: each shard


@dataclass(frozen=True)
class ShardView:
    """One shard of a sharded fleet: its leader (None: nobody leads it) and the spec that
    leader last had in force."""

    shard: int
    holder: Holder | None
    spec_sha: str | None


def who_leads(settings: EtcdCoordination) -> LeaderView:
    """Read-only: the leader key and the controllers' keys."""
    client = EtcdClient(settings.endpoints, timeout=settings.retry_timeout.total_seconds())
    prefix = settings.prefix.rstrip("/")
    try:
        holder = describe(client.get(f"{prefix}/leader"))
        controllers = []
        for kv in client.get_prefix(f"{prefix}/controllers/"):
            data = json.loads(kv.value or b"{}")
            last = data.get("last_pass")
            controllers.append((str(data.get("name", "?")), float(last) if last else None))
        spec = client.get(f"{prefix}/shared/spec")
        count = settings.shards if settings.shards > 1 else 0  # one leader: no shard keys
        shards = [_shard_view(client, prefix, k) for k in range(count)]
        return LeaderView(
            holder, controllers, spec_sha=spec.value.decode() if spec else None, shards=shards
        )
    except EtcdUnavailable as exc:
        return LeaderView(None, [], str(exc))
    finally:
        client.close()


def _shard_view(client: EtcdClient, prefix: str, shard: int) -> ShardView:
    spec = client.get(f"{prefix}/shards/{shard}/shared/spec")
    holder = describe(client.get(f"{prefix}/shards/{shard}/leader"))
    return ShardView(shard, holder, spec.value.decode() if spec else None)
