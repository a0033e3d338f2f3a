"""Incidents and the outbox: one contract, run against both backends (the journal's
SQLite and a real etcd, Debian's etcd-server on a loopback port), and what etcd adds:
a channel's claim held by one sender at a time and taken over when its holder dies,
pages sent once by two senders racing, and a deposed leader's writes refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.coordination.etcd import EtcdClient
from reconciler.coordination.etcd_incidents import KEEP_CLOSED, EtcdIncidents
from reconciler.events.bus import Event
from reconciler.flows.incident_desk import IncidentDesk
from reconciler.flows.outbox_sender import OutboxSender
from reconciler.store.incidents import Incidents, LocalIncidents
from reconciler.store.journal import Journal
from reconciler.store.memory import Deposed
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.unit.test_incidents import _notifications, standins  # noqa: F401 (the fixture)


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


@pytest.fixture
def client(etcd: Cluster) -> Iterator[EtcdClient]:
    found = EtcdClient(etcd.endpoints, timeout=5.0)
    yield found
    found.close()


@pytest.fixture(params=["journal", "etcd"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Incidents]:
    if request.param == "journal":
        yield LocalIncidents(Journal(tmp_path / "journal.db"))
        return
    client: EtcdClient = request.getfixturevalue("client")
    yield EtcdIncidents(client, f"/t-{tmp_path.name}", owner="ctl-a")


def incident(
    incident_id: str, fingerprint: str, status: str = "open", at: float = 1.0
) -> dict[str, Any]:
    return {
        "id": incident_id,
        "fingerprint": fingerprint,
        "status": status,
        "first_seen": at,
        "last_seen": at,
        "resolved_at": at if status == "resolved" else None,
        "timeline": [{"at": at, "what": "opened"}],
    }


def test_an_open_incident_is_found_by_its_fingerprint_until_it_resolves(store: Incidents) -> None:
    store.put("INC-1", "unit:kimi:agent", "open", incident("INC-1", "unit:kimi:agent"))
    found = store.open_for("unit:kimi:agent")
    assert found is not None and found["id"] == "INC-1"
    assert store.open_for("unit:hermes:agent") is None
    store.put(
        "INC-1", "unit:kimi:agent", "resolved", incident("INC-1", "unit:kimi:agent", "resolved")
    )
    assert store.open_for("unit:kimi:agent") is None
    again = store.get("INC-1")
    assert again is not None and again["status"] == "resolved"


def test_recent_lists_the_open_first_then_the_newest_resolved(store: Incidents) -> None:
    for n in range(4):
        store.put(f"INC-{n}", f"f{n}", "resolved", incident(f"INC-{n}", f"f{n}", "resolved", n))
    store.put("INC-9", "f9", "open", incident("INC-9", "f9", at=0.5))
    assert [i["id"] for i in store.recent(3)] == ["INC-9", "INC-3", "INC-2"]
    assert {i["id"] for i in store.opened_since(2.0)} == {"INC-2", "INC-3"}


def test_a_notification_is_queued_once_in_order_and_leaves_when_sent(store: Incidents) -> None:
    assert store.enqueue("INC-1:opened:1:tg", "tg", "INC-1", {"transition": "opened"})
    assert not store.enqueue("INC-1:opened:1:tg", "tg", "INC-1", {"transition": "opened"})
    assert store.enqueue("INC-1:opened:1:log", "log", "INC-1", {"transition": "opened"})
    assert store.enqueue("INC-2:opened:1:tg", "tg", "INC-2", {"transition": "opened"})
    assert [q.key for q in store.unsent(channel="tg")] == ["INC-1:opened:1:tg", "INC-2:opened:1:tg"]
    assert store.waiting_channels() == ["log", "tg"] and store.pending() == 3
    first = store.unsent(channel="tg")[0]
    store.failed(first, "429", time.time() + 60)
    assert [q.key for q in store.due(time.time())] == ["INC-1:opened:1:log", "INC-2:opened:1:tg"]
    assert store.unsent(channel="tg")[0].attempts == 1
    store.sent(store.unsent(channel="tg")[0])
    assert not store.enqueue("INC-1:opened:1:tg", "tg", "INC-1", {"transition": "opened"})
    assert store.pending() == 2
    deliveries = store.deliveries("INC-1")
    assert [(k, c, e) for k, c, _s, e in deliveries] == [
        ("INC-1:opened:1:tg", "tg", None),
        ("INC-1:opened:1:log", "log", None),
    ]
    assert deliveries[0][2] is not None and deliveries[1][2] is None


def test_a_channel_is_claimed_by_one_sender_and_taken_over_when_it_dies(
    client: EtcdClient, tmp_path: Path
) -> None:
    prefix = f"/t-{tmp_path.name}"
    a = EtcdIncidents(client, prefix, owner="ctl-a", claim_ttl=2)
    b = EtcdIncidents(client, prefix, owner="ctl-b", claim_ttl=2)
    assert a.claim("tg") and a.claim("tg")
    assert not b.claim("tg")
    assert b.claim("gitea")  # channels are claimed one by one
    a.release()  # a clean exit: at once
    assert b.claim("tg")
    # b dies (it renews no more): its claim expires with its lease, and a takes over.
    deadline = time.monotonic() + 10
    while not a.claim("tg"):
        assert time.monotonic() < deadline, "the dead sender's claim never expired"
        time.sleep(0.25)


def test_two_senders_racing_deliver_each_page_once(
    standins: tuple[int, int, Path],  # noqa: F811 (the fixture)
    client: EtcdClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tg, gitea, stores = standins
    notifications = _notifications(tg, gitea, "123:token", monkeypatch)
    prefix = f"/t-{tmp_path.name}"
    desk = IncidentDesk(EtcdIncidents(client, prefix), lambda: notifications)
    for n in range(5):  # five hosts, five incidents, five pages to Telegram
        desk(Event("P0", "heal_failed", f"agent down #{n}", f"host{n}", "agent", at=time.time()))
    sent: list[int] = []

    def drain(owner: str) -> None:
        with httpx.Client(trust_env=False) as http:
            store = EtcdIncidents(client, prefix, owner=owner)
            sent.append(OutboxSender(store, http, lambda _line: None).drain(notifications, 20))
            store.release()

    racers = [threading.Thread(target=drain, args=(name,)) for name in ("ctl-a", "ctl-b")]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    texts = [m["text"] for m in json.loads((stores / "tg.json").read_text())]
    assert len(texts) == 5 and len(set(texts)) == 5, texts  # each page once, none lost
    assert sum(sent) == 15  # Telegram, Gitea and the log line, five each, by either sender
    assert EtcdIncidents(client, prefix).pending() == 0


def test_a_deposed_leader_writes_no_incident_and_queues_no_page(
    client: EtcdClient, tmp_path: Path
) -> None:
    prefix = f"/t-{tmp_path.name}"
    guard = f"{prefix}/leader"
    client.put(guard, b"ctl-a")
    elected = client.get(guard)
    assert elected is not None
    held = (guard, elected.create_revision)
    leader = EtcdIncidents(client, prefix, fence=lambda: held)
    leader.put("INC-1", "f", "open", incident("INC-1", "f"))
    assert leader.enqueue("INC-1:opened:1:tg", "tg", "INC-1", {})
    client.delete(guard)
    client.put(guard, b"ctl-b")  # another controller leads: a new create revision
    with pytest.raises(Deposed):
        leader.put("INC-1", "f", "resolved", incident("INC-1", "f", "resolved"))
    with pytest.raises(Deposed):
        leader.enqueue("INC-1:resolved:2:tg", "tg", "INC-1", {})
    standby = EtcdIncidents(client, prefix, fence=lambda: (guard, None))
    with pytest.raises(Deposed):
        standby.put("INC-2", "g", "open", incident("INC-2", "g"))
    reader = EtcdIncidents(client, prefix)
    assert reader.open_for("f") is not None and reader.pending() == 1


def test_only_the_newest_resolved_incidents_are_kept(client: EtcdClient, tmp_path: Path) -> None:
    store = EtcdIncidents(client, f"/t-{tmp_path.name}")
    for n in range(KEEP_CLOSED + 3):
        store.put(f"INC-{n:04d}", "f", "resolved", incident(f"INC-{n:04d}", "f", "resolved", n))
    kept = client.get_prefix(f"/t-{tmp_path.name}/memory/incidents/closed/")
    assert len(kept) == KEEP_CLOSED
    assert store.get("INC-0000") is None and store.get(f"INC-{KEEP_CLOSED + 2:04d}") is not None


def test_an_incident_over_the_value_bound_keeps_its_first_and_last_steps(
    client: EtcdClient, tmp_path: Path
) -> None:
    store = EtcdIncidents(client, f"/t-{tmp_path.name}")
    long = incident("INC-1", "f")
    long["timeline"] = [{"at": float(n), "what": "x" * 2000} for n in range(200)]
    store.put("INC-1", "f", "open", long)
    found = store.get("INC-1")
    assert found is not None
    assert found["timeline"][0]["at"] == 0.0 and found["timeline"][-1]["at"] == 199.0
    assert len(found["timeline"]) == 51


def test_values_of_another_shape_are_skipped_not_fatal(client: EtcdClient, tmp_path: Path) -> None:
    prefix = f"/t-{tmp_path.name}"
    store = EtcdIncidents(client, prefix)
    store.enqueue("INC-1:opened:1:tg", "tg", "INC-1", {"transition": "opened"})
    client.put(f"{prefix}/memory/outbox/queued/junk", b"{not json")
    client.put(f"{prefix}/memory/outbox/queued/odd", b'{"key": "odd"}')
    client.put(f"{prefix}/memory/incidents/open/INC-9", b"[1, 2]")
    assert [q.key for q in store.unsent()] == ["INC-1:opened:1:tg"]
    assert store.open_for("f") is None
    assert [d[0] for d in store.deliveries("INC-1")] == ["INC-1:opened:1:tg"]
