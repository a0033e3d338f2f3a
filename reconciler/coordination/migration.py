"""One controller's memory moved into etcd, once, when its fleet turns on `coordination:
{kind: etcd}` (`reconcile migrate-store`, or `reconcile watch` the first time it leads).

What moves, under the leader's token, and only where etcd holds nothing yet (what
etcd holds is the fleet's, and stands):
- operator intent and source holds (`intent/`, `source/` of the journal's memory);
- open incidents (unless etcd has one open for the same condition) and notifications
  not yet sent (queued once, by their keys);
- the snapshot ledger (merged both ways: etcd's into the journal, then the union back).

A mark in the journal (`migrated/etcd`) with what moved and when makes it once; the
move is also a P3 event in the journal. Nothing is deleted from the journal.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from reconciler.coordination.etcd_incidents import incidents_for
from reconciler.coordination.etcd_memory import EtcdMemory, shared_client
from reconciler.coordination.leader import Leadership
from reconciler.coordination.shared_ledger import pull_ledgers, push_ledgers
from reconciler.store.incidents import LocalIncidents
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from reconciler.store.memory import LocalMemory
from state.load import LoadedFleet
from state.spec.controller import EtcdCoordination

MARK = "migrated/etcd"
FOLDERS = ("intent", "source")


@dataclass(frozen=True)
class Moved:
    keys: int
    incidents: int
    notifications: int
    snapshots: int
    at: float

    def __str__(self) -> str:
        return (
            f"moved into etcd: {self.keys} key(s) of operator intent and source holds, "
            f"{self.incidents} open incident(s), {self.notifications} unsent notification(s); "
            f"{self.snapshots} judged snapshot(s) in the shared ledger"
        )


def migrated(journal: Journal) -> Moved | None:
    """What an earlier move took, or None (never moved)."""
    raw = LocalMemory(journal).get(MARK)
    return Moved(**json.loads(raw)) if raw is not None else None


def migrate(loaded: LoadedFleet, journal: Journal, leadership: Leadership) -> Moved | None:
    """Move this journal's memory into etcd, once; None when it moved before (or the
    fleet does not coordinate on etcd). The caller leads (`leadership`)."""
    coordination = loaded.fleet.reconciler.coordination
    if not isinstance(coordination, EtcdCoordination) or migrated(journal) is not None:
        return None
    local = LocalMemory(journal)
    shared = EtcdMemory(shared_client(coordination), coordination.prefix, leadership.fence)
    keys = 0
    for folder in FOLDERS:
        for key, value in local.items(folder).items():
            if shared.get(key) is None:
                shared.put(key, value)
                keys += 1
    incidents, notifications = _move_incidents(loaded, journal, leadership)
    pull_ledgers(leadership, journal, loaded)
    push_ledgers(leadership, journal, loaded, {})
    ledger = Ledger(journal)
    snapshots = sum(len(ledger.export(name)["entries"]) for name in loaded.fleet.backups)
    moved = Moved(keys, incidents, notifications, snapshots, time.time())
    local.put(MARK, json.dumps(moved.__dict__))
    journal.record_event(moved.at, "P3", "store_migrated", None, None, str(moved), moved.__dict__)
    return moved


def _move_incidents(
    loaded: LoadedFleet, journal: Journal, leadership: Leadership
) -> tuple[int, int]:
    coordination = loaded.fleet.reconciler.coordination
    target = incidents_for(coordination, journal, leadership.fence, leadership.name)
    source = LocalIncidents(journal)
    opened = 0
    for raw in source.recent(10_000):
        if raw["status"] == "open" and target.open_for(raw["fingerprint"]) is None:
            target.put(raw["id"], raw["fingerprint"], "open", raw)
            opened += 1
    queued = 0
    for item in source.unsent(10_000):
        queued += target.enqueue(item.key, item.channel, item.incident, item.payload)
        source.sent(item)  # handed to etcd's outbox: never sent from here as well
    return opened, queued
