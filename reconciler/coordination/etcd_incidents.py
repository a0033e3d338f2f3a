"""Incidents and the outbox on etcd (reconciler.store.incidents), shared by every
controller of a fleet, and which store a fleet's `coordination` settings ask for.

Keys, under `PREFIX/memory/`:

| key                          | value                                   | written by            |
|------------------------------|-----------------------------------------|-----------------------|
| `incidents/open/ID`          | an open incident                        | the leader (fenced)   |
| `incidents/closed/ID`        | a resolved one (the newest `KEEP_CLOSED`) | the leader (fenced) |
| `outbox/queued/KEY`          | a notification not yet accepted         | the leader (fenced)   |
| `outbox/sent/KEY`            | one accepted (the newest `KEEP_SENT`)   | its channel's sender  |
| `outbox/claim/CHANNEL`       | the sender delivering that channel      | on the sender's lease |

Pages, exactly once as far as etcd can say: a sender delivers a channel only while
its claim holds (a key on its own lease, `CLAIM_TTL_S`), and re-reads the claim before
each notification. A notification is marked sent (moved from `queued/` to `sent/` in
one transaction) when its channel accepted it. A sender that dies leaves its claim to
expire; the next sender takes the channel and the queue as it is. What stays
at-least-once: a sender that dies (or stalls past its lease) after the channel accepted
a notification and before the move is written: that one is sent again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from reconciler.coordination.etcd import (
    EtcdClient,
    EtcdUnavailable,
    KeyValue,
    absent,
    created_at,
    delete_op,
    present,
    put_op,
)
from reconciler.coordination.etcd_memory import Fence, shared_client
from reconciler.store.incidents import Incidents, LocalIncidents, Queued, due
from reconciler.store.journal import Journal
from reconciler.store.memory import MAX_VALUE_BYTES, Deposed, MemoryUnavailable
from state.spec.controller import Coordination, EtcdCoordination

T = TypeVar("T")
CLAIM_TTL_S = 15
KEEP_CLOSED = 500
KEEP_SENT = 2000
TIMELINE_KEPT = 50  # an incident over the value bound keeps its first step and these


class EtcdIncidents:
    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        fence: Fence | None = None,
        owner: str = "",
        claim_ttl: int = CLAIM_TTL_S,
    ) -> None:
        self.client, self.fence, self.owner = client, fence, owner or "a controller"
        self.claim_ttl = claim_ttl
        self.root = f"{prefix.rstrip('/')}/memory/"
        self.lease = 0
        self.renewed = float("-inf")
        self.lock = threading.Lock()

    # -- incidents ------------------------------------------------------------------
    def open_for(self, fingerprint: str) -> dict[str, Any] | None:
        found = [i for i in self._values("incidents/open/") if i.get("fingerprint") == fingerprint]
        return max(found, key=lambda i: i.get("last_seen", 0), default=None)

    def put(self, incident_id: str, fingerprint: str, status: str, data: dict[str, Any]) -> None:
        value = _bounded(data)
        opened, closed = (
            self._key("incidents/open/", incident_id),
            self._key("incidents/closed/", incident_id),
        )
        if status == "open":
            self._write([], [put_op(opened, value), delete_op(closed)], incident_id)
            return
        self._write([], [delete_op(opened), put_op(closed, value)], incident_id)
        self._trim("incidents/closed/", KEEP_CLOSED)

    def get(self, incident_id: str) -> dict[str, Any] | None:
        for folder in ("incidents/open/", "incidents/closed/"):
            found = self._call(functools.partial(self.client.get, self._key(folder, incident_id)))
            if found is not None:
                return _parsed(found)
        return None

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        opened = sorted(self._values("incidents/open/"), key=_updated, reverse=True)
        left = max(0, limit - len(opened))
        closed = self._values("incidents/closed/", left, last_first=True) if left else []
        return (opened + sorted(closed, key=_updated, reverse=True))[:limit]

    def opened_since(self, since: float, limit: int = 1000) -> list[dict[str, Any]]:
        every = self._values("incidents/open/") + self._values("incidents/closed/")
        found = [i for i in every if i.get("first_seen", 0) >= since]
        return sorted(found, key=_updated, reverse=True)[:limit]

    # -- outbox ---------------------------------------------------------------------
    def enqueue(self, key: str, channel: str, incident: str, payload: dict[str, Any]) -> bool:
        queued, sent = self._key("outbox/queued/", key), self._key("outbox/sent/", key)
        entry = {
            "key": key,
            "channel": channel,
            "incident": incident,
            "payload": payload,
            "created": time.time(),
            "attempts": 0,
            "next_try": 0.0,
            "sent": None,
            "error": None,
        }
        value = json.dumps(entry).encode()
        if len(value) > MAX_VALUE_BYTES:
            value = json.dumps({**entry, "payload": _trimmed_payload(payload)}).encode()
        return self._write([absent(queued), absent(sent)], [put_op(queued, value)], key)

    def due(self, now: float, limit: int = 20) -> list[Queued]:
        return due(self.unsent(limit=10_000), now, limit)

    def unsent(self, limit: int = 200, channel: str | None = None) -> list[Queued]:
        found = self._call(lambda: self.client.get_prefix(self.root + "outbox/queued/"))
        items = [q for kv in found if (q := _queued(kv)) is not None]
        return [q for q in sorted(items, key=lambda q: q.seq) if channel in (None, q.channel)][
            :limit
        ]

    def waiting_channels(self) -> list[str]:
        return sorted({q.channel for q in self.unsent(limit=10_000)})

    def pending(self) -> int:
        return len(self.unsent(limit=10_000))

    def claim(self, channel: str) -> bool:
        key = self._key("outbox/claim/", channel)
        with self.lock:
            lease = self._lease()
            created, _, holder = self._call(
                lambda: self.client.create(key, self.owner.encode(), lease)
            )
        return created or (holder is not None and holder.lease == lease)

    def sent(self, item: Queued) -> None:
        queued, sent = self._key("outbox/queued/", item.key), self._key("outbox/sent/", item.key)
        found = self._call(lambda: self.client.get(queued))
        if found is None:
            return  # marked by a sender before this one
        entry = {**_parsed(found), "sent": time.time(), "error": None}
        entry["seq"] = found.create_revision  # its place in the queue, kept once sent
        self._call(
            lambda: self.client.txn(
                [present(queued)], [delete_op(queued), put_op(sent, json.dumps(entry).encode())]
            )
        )
        self._trim("outbox/sent/", KEEP_SENT)

    def failed(self, item: Queued, error: str, retry_at: float) -> None:
        queued = self._key("outbox/queued/", item.key)
        found = self._call(lambda: self.client.get(queued))
        if found is None:
            return
        entry = _parsed(found)
        entry.update(attempts=int(entry.get("attempts", 0)) + 1, error=error, next_try=retry_at)
        self._call(
            lambda: self.client.txn(
                [created_at(queued, found.create_revision)],
                [put_op(queued, json.dumps(entry).encode())],
            )
        )

    def deliveries(self, incident: str) -> list[tuple[str, str, float | None, str | None]]:
        found = self._call(lambda: self.client.get_prefix(self.root + "outbox/"))
        entries = [(kv, _parsed(kv)) for kv in found if "/claim/" not in kv.key]
        rows = [
            (int(e.get("seq", kv.create_revision)), e)
            for kv, e in entries
            if e.get("incident") == incident and {"key", "channel"} <= set(e)
        ]
        mine = sorted(rows, key=lambda r: r[0])
        return [(e["key"], e["channel"], e.get("sent"), e.get("error")) for _, e in mine]

    def where(self) -> str:
        return f"etcd ({', '.join(self.client.endpoints)}, {self.root}), shared by every controller"

    # -- the parts ------------------------------------------------------------------
    def _key(self, folder: str, name: str) -> str:
        if not name or "/" in name or len(name) > 256:
            raise MemoryUnavailable(f"the fleet's memory: no key for {name[:80]!r}")
        return f"{self.root}{folder}{name}"

    def _values(
        self, folder: str, limit: int = 0, last_first: bool = False
    ) -> list[dict[str, Any]]:
        found = self._call(
            lambda: self.client.get_prefix(self.root + folder, limit, last_first=last_first)
        )
        return [_parsed(kv) for kv in found]

    def _write(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], what: str
    ) -> bool:
        """One transaction, guarded by the writer's token when it has a fence: whether
        `compare` held. A deposed leader's write raises Deposed, never lands."""
        if self.fence is None:
            return self._call(lambda: self.client.txn(compare, success))[0]
        guard, token = self.fence()
        if token is None:
            raise Deposed(f"not written ({what}): this controller does not lead")
        done, _ = self._call(lambda: self.client.txn([created_at(guard, token), *compare], success))
        if not done and not self._call(lambda: self.client.txn([created_at(guard, token)], []))[0]:
            raise Deposed(f"not written ({what}): this controller no longer leads")
        return done

    def _trim(self, folder: str, keep: int) -> None:
        """Forget all but the newest `keep` under `folder` (a resolve or a delivery, at
        most one key over, so one delete)."""
        found = self._call(lambda: self.client.get_prefix(self.root + folder, keys_only=True))
        for old in sorted(found, key=lambda kv: kv.create_revision)[: max(0, len(found) - keep)]:
            self._call(functools.partial(self.client.delete, old.key))

    def _lease(self) -> int:
        """This sender's lease, renewed at most once a second, granted again if it ran
        out (its claims went with it)."""
        now = time.monotonic()
        if self.lease and now - self.renewed < 1.0:
            return self.lease
        if self.lease and self._call(lambda: self.client.keepalive(self.lease)) > 0:
            self.renewed = now
            return self.lease
        self.lease, self.renewed = self._call(lambda: self.client.grant(self.claim_ttl)), now
        return self.lease

    def _call(self, do: Callable[[], T]) -> T:
        try:
            return do()
        except EtcdUnavailable as exc:
            raise MemoryUnavailable(f"the fleet's memory: {exc}") from None

    def release(self) -> None:
        """Give this sender's claims up at once (a clean exit)."""
        if self.lease:
            with contextlib.suppress(EtcdUnavailable):  # else they expire with the lease
                self.client.revoke(self.lease)
            self.lease = 0


def _parsed(kv: KeyValue) -> dict[str, Any]:
    """A value as the leaders write it, or {} (a value of another shape reads as empty)."""
    try:
        found = json.loads(kv.value)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _updated(incident: dict[str, Any]) -> float:
    return float(incident.get("resolved_at") or incident.get("last_seen") or 0)


def _queued(kv: KeyValue) -> Queued | None:
    """A queued notification, or None for a value of another shape (skipped)."""
    entry = _parsed(kv)
    try:
        return Queued(
            kv.create_revision,
            str(entry["key"]),
            str(entry["channel"]),
            str(entry["incident"]),
            dict(entry["payload"]),
            int(entry.get("attempts", 0)),
            float(entry.get("next_try", 0.0)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _bounded(data: dict[str, Any]) -> bytes:
    """An incident as JSON within the value bound: a long timeline keeps its first step
    and its last `TIMELINE_KEPT`, and, if that is still too long, every text is cut."""
    value = json.dumps(data).encode()
    if len(value) <= MAX_VALUE_BYTES:
        return value
    timeline = list(data.get("timeline") or [])
    if len(timeline) > TIMELINE_KEPT + 1:
        timeline = [timeline[0], *timeline[-TIMELINE_KEPT:]]
    cut = [{**step, "what": str(step.get("what", ""))[:400]} for step in timeline]
    return json.dumps(
        {**data, "message": str(data.get("message", ""))[:400], "timeline": cut}
    ).encode()


def _trimmed_payload(payload: dict[str, Any]) -> dict[str, Any]:
    text = str(payload.get("text", ""))
    return {**payload, "text": text[: MAX_VALUE_BYTES // 4]}


def incidents_for(
    coordination: Coordination, journal: Journal, fence: Fence | None = None, owner: str = ""
) -> Incidents:
    """etcd's shared incidents and outbox when controllers coordinate there, else this
    controller's journal. `fence`: the leader's token guards its writes."""
    if not isinstance(coordination, EtcdCoordination):
        return LocalIncidents(journal)
    return EtcdIncidents(shared_client(coordination), coordination.prefix, fence, owner)
