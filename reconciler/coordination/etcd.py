"""A small etcd v3 client over the JSON gRPC gateway (`/v3/...`), with httpx.

Why this and not a Python etcd package: the gateway is part of every etcd since 3.3
(Debian's 3.4 included), Patroni uses it the same way, and httpx is already how the
reconciler talks HTTP; `etcd3` is unmaintained and breaks with protobuf >= 4. Only
what leadership and shared state need: leases, range, put and transactions. Keys and
values are base64 on the wire; 64-bit integers are JSON strings.

Every call tries the endpoints in turn, starting with the last one that answered; a
call that no endpoint answers within `timeout` raises `EtcdUnavailable` (a quorum
lost shows as that too: the members time the request out).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler.errors import TemporaryError
from reconciler.untrusted.http import bounded_client


class EtcdUnavailable(TemporaryError, ConnectionError):
    """No endpoint answered (or none with a quorum)."""


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(raw["key"]).decode(),
        value=base64.b64decode(raw.get("value", "")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
        lease=int(raw.get("lease", 0)),
    )


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return _b64(bytes(raw))


class EtcdClient:
    def __init__(self, endpoints: list[str], timeout: float) -> None:
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self._next = 0
        self.http = bounded_client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for i in range(len(self.endpoints)):
            index = (self._next + i) % len(self.endpoints)
            url = f"{self.endpoints[index]}/v3/{path}"
            try:
                response = self.http.post(url, json=body)
            except httpx.HTTPError as exc:
                errors.append(f"{self.endpoints[index]}: {type(exc).__name__}")
                continue
            answer = response.json() if response.content else {}
            if response.status_code != 200:
                message = answer.get("message") or answer.get("error") or response.text[:200]
                errors.append(f"{self.endpoints[index]}: {message}")
                continue
            self._next = index
            return answer.get("result", answer) if path == "lease/keepalive" else answer
        raise EtcdUnavailable("etcd: no endpoint answered: " + "; ".join(errors))

    # Leases.
    def grant(self, ttl: int) -> int:
        return int(self.call("lease/grant", {"TTL": ttl})["ID"])

    def keepalive(self, lease: int) -> int:
        """The lease's remaining TTL after renewing it; 0: it has expired."""
        return int(self.call("lease/keepalive", {"ID": str(lease)}).get("TTL", 0))

    def time_to_live(self, lease: int) -> int:
        """Seconds the lease has left (etcd rounds down); -1 once it has expired."""
        return int(self.call("lease/timetolive", {"ID": str(lease)}).get("TTL", -1))

    def revoke(self, lease: int) -> None:
        self.call("lease/revoke", {"ID": str(lease)})

    # Keys.
    def get(self, key: str) -> KeyValue | None:
        found = self.call("kv/range", {"key": _b64(key)}).get("kvs", [])
        return _kv(found[0]) if found else None

    def get_prefix(
        self, prefix: str, limit: int = 0, last_first: bool = False, keys_only: bool = False
    ) -> list[KeyValue]:
        """Every key under `prefix` in key order (the last keys first if `last_first`),
        at most `limit` of them (0: all); without their values if `keys_only`."""
        body: dict[str, Any] = {"key": _b64(prefix), "range_end": prefix_end(prefix)}
        if keys_only:
            body["keys_only"] = True
        if limit:
            body["limit"] = str(limit)
        if last_first:
            body["sort_order"], body["sort_target"] = "DESCEND", "KEY"
        return [_kv(raw) for raw in self.call("kv/range", body).get("kvs", [])]

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]]) -> tuple[bool, int]:
        """All of `success` if every `compare` holds, else nothing: (succeeded, revision).
        Build the parts with `absent`, `present`, `created_at`, `leased`, `put_op` and
        `delete_op`."""
        answer = self.call("kv/txn", {"compare": compare, "success": success})
        return bool(answer.get("succeeded")), int(answer["header"]["revision"])

    def put(self, key: str, value: bytes, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("kv/put", body)["header"]["revision"])

    def create(self, key: str, value: bytes, lease: int) -> tuple[bool, int, KeyValue | None]:
        """Put `key` only if it does not exist: (created, revision, the holder if not)."""
        answer = self.call(
            "kv/txn",
            {
                "compare": [{"key": _b64(key), "target": "CREATE", "create_revision": "0"}],
                "success": [
                    {"request_put": {"key": _b64(key), "value": _b64(value), "lease": str(lease)}}
                ],
                "failure": [{"request_range": {"key": _b64(key)}}],
            },
        )
        revision = int(answer["header"]["revision"])
        if answer.get("succeeded"):
            return True, revision, None
        kvs = answer["responses"][0]["response_range"].get("kvs", [])
        return False, revision, _kv(kvs[0]) if kvs else None

    def put_if_created_at(self, guard: str, revision: int, key: str, value: bytes) -> bool:
        """Put `key` only while `guard` still exists with this create revision (the
        leader key and its fencing token): a deposed leader's write is refused."""
        answer = self.call(
            "kv/txn",
            {
                "compare": [
                    {"key": _b64(guard), "target": "CREATE", "create_revision": str(revision)}
                ],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            },
        )
        return bool(answer.get("succeeded"))

    def delete_if_created_at(self, key: str, revision: int) -> bool:
        answer = self.call(
            "kv/txn",
            {
                "compare": [
                    {"key": _b64(key), "target": "CREATE", "create_revision": str(revision)}
                ],
                "success": [{"request_delete_range": {"key": _b64(key)}}],
            },
        )
        return bool(answer.get("succeeded"))

    def delete(self, key: str) -> int:
        """Delete `key`; how many keys were deleted (0 or 1)."""
        return int(self.call("kv/deleterange", {"key": _b64(key)}).get("deleted", 0))

    def delete_if_guarded(self, guard: str, revision: int, key: str) -> bool | None:
        """Delete `key` only while `guard` has this create revision: whether it was
        there, or None when the guard no longer holds (a deposed leader)."""
        answer = self.call(
            "kv/txn",
            {
                "compare": [
                    {"key": _b64(guard), "target": "CREATE", "create_revision": str(revision)}
                ],
                "success": [{"request_delete_range": {"key": _b64(key)}}],
            },
        )
        if not answer.get("succeeded"):
            return None
        deleted = answer["responses"][0]["response_delete_range"].get("deleted", 0)
        return int(deleted) > 0


def absent(key: str) -> dict[str, Any]:
    return {"key": _b64(key), "target": "CREATE", "create_revision": "0"}


def present(key: str) -> dict[str, Any]:
    return {"key": _b64(key), "target": "CREATE", "result": "GREATER", "create_revision": "0"}


def created_at(key: str, revision: int) -> dict[str, Any]:
    """`key` exists with this create revision (a leader key and its fencing token)."""
    return {"key": _b64(key), "target": "CREATE", "create_revision": str(revision)}


def leased(key: str, lease: int) -> dict[str, Any]:
    """`key` exists and is held by this lease (a claim still its holder's)."""
    return {"key": _b64(key), "target": "LEASE", "lease": str(lease)}


def put_op(key: str, value: bytes, lease: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def delete_op(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": _b64(key)}}
