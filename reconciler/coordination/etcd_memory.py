"""The fleet's memory on etcd (reconciler.store.memory), and which memory a fleet's
`coordination` settings ask for.

Keys live under `PREFIX/memory/`. A leader's write is a transaction that holds only
while its leader key still has the create revision it was elected with (its fencing
token): a deposed or paused leader's write is refused, never applied. An operator's
write (`reconcile suspend`) is intent, not a leader's state, and is written as given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from reconciler.coordination.etcd import EtcdClient, EtcdUnavailable
from reconciler.store.journal import Journal
from reconciler.store.memory import Deposed, LocalMemory, Memory, MemoryUnavailable, checked
from reconciler.store.suspension import move_old_suspension
from state.spec.controller import Coordination, EtcdCoordination

Fence = Callable[[], tuple[str, int | None]]
"""The writer's leader key and its fencing token (None: it does not lead now)."""


class EtcdMemory:
    def __init__(self, client: EtcdClient, prefix: str, fence: Fence | None = None) -> None:
        self.client, self.fence = client, fence
        self.root = f"{prefix.rstrip('/')}/memory/"

    def get(self, key: str) -> str | None:
        checked(key)
        try:
            found = self.client.get(self.root + key)
        except EtcdUnavailable as exc:
            raise MemoryUnavailable(f"the fleet's memory: {exc}") from None
        return found.value.decode(errors="replace") if found else None

    def put(self, key: str, value: str) -> None:
        checked(key, value)
        try:
            if self.fence is None:
                self.client.put(self.root + key, value.encode())
                return
            guard, token = self.fence()
            if token is None or not self.client.put_if_created_at(
                guard, token, self.root + key, value.encode()
            ):
                raise Deposed(f"not written ({key}): this controller no longer leads")
        except EtcdUnavailable as exc:
            raise MemoryUnavailable(f"the fleet's memory: {exc}") from None

    def delete(self, key: str) -> bool:
        checked(key)
        try:
            if self.fence is None:
                return self.client.delete(self.root + key) > 0
            guard, token = self.fence()
            if token is None:
                raise Deposed(f"not deleted ({key}): this controller no longer leads")
            deleted = self.client.delete_if_guarded(guard, token, self.root + key)
        except EtcdUnavailable as exc:
            raise MemoryUnavailable(f"the fleet's memory: {exc}") from None
        if deleted is None:
            raise Deposed(f"not deleted ({key}): this controller no longer leads")
        return deleted

    def items(self, prefix: str) -> dict[str, str]:
        checked(prefix + "/x")
        try:
            found = self.client.get_prefix(f"{self.root}{prefix}/")
        except EtcdUnavailable as exc:
            raise MemoryUnavailable(f"the fleet's memory: {exc}") from None
        return {kv.key.removeprefix(self.root): kv.value.decode(errors="replace") for kv in found}

    def where(self) -> str:
        return f"etcd ({', '.join(self.client.endpoints)}, {self.root}), shared by every controller"


_CLIENTS: dict[tuple[tuple[str, ...], float], EtcdClient] = {}
_LOCK = threading.Lock()


def memory_for(coordination: Coordination, journal: Journal) -> Memory:
    """The fleet's memory as an operator or a reader sees it: etcd's when controllers
    coordinate there (one client per process), else this controller's journal."""
    shared = shared_memory(coordination)
    if shared is not None:
        return shared
    memory = LocalMemory(journal)
    move_old_suspension(journal, memory)
    return memory


def shared_memory(coordination: Coordination) -> EtcdMemory | None:
    """etcd's memory when controllers coordinate there, else None (one controller: what
    it keeps in its own mirror and journal is the fleet's)."""
    if not isinstance(coordination, EtcdCoordination):
        return None
    return EtcdMemory(shared_client(coordination), coordination.prefix)


def shared_client(coordination: EtcdCoordination) -> EtcdClient:
    """One etcd client per process and endpoints (its connections are reused)."""
    timeout = coordination.retry_timeout.total_seconds()
    with _LOCK:
        client = _CLIENTS.get((tuple(coordination.endpoints), timeout))
        if client is None:
            client = EtcdClient(coordination.endpoints, timeout=timeout)
            _CLIENTS[(tuple(coordination.endpoints), timeout)] = client
    return client
