"""The fleet's shared state as any controller reads it, leading or not: before a command
that only looks (`status`, `--dry-run`, `backup list`) plans on a follower's machine,
the failover placement and the snapshot ledgers the leaders wrote to etcd are merged
into this controller's journal, so it shows the fleet's, not what it last saw itself.

Merging only ever moves the journal forward: a ledger merge adds snapshots (the first
verdict stands), and a failover state replaces the journal's only when its placement is
newer (a higher epoch, or the same epoch changed later). The leader's own journal is
always at least as new as what it wrote, so a read on its machine changes nothing."""

from __future__ import annotations

import json

from pydantic import ValidationError

from reconciler.coordination.etcd import EtcdClient, EtcdUnavailable
from reconciler.coordination.shared_ledger import ledger_key
from reconciler.store.failover_state import FailoverState, FailoverStore, pair_key
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from state.load import LoadedFleet
from state.shards import shard_map
from state.spec.controller import EtcdCoordination


def catch_up(loaded: LoadedFleet, journal: Journal) -> str | None:
    """Merge the fleet's shared failover state and ledgers into `journal`; what moved,
    or why nothing could be read (etcd away), or None (nothing new, or no etcd)."""
    coordination = loaded.fleet.reconciler.coordination
    if not isinstance(coordination, EtcdCoordination):
        return None
    client = EtcdClient(coordination.endpoints, coordination.retry_timeout.total_seconds())
    try:
        return _merge(_Reader(client, coordination, loaded), journal, loaded)
    except EtcdUnavailable as exc:
        return f"the fleet's failover state and ledger not read ({exc}): this journal's shown"
    finally:
        client.close()


class _Reader:
    """Reads `PREFIX/shared/KEY`, or with shards the key under the shard of its host."""

    def __init__(self, client: EtcdClient, settings: EtcdCoordination, loaded: LoadedFleet):
        self.client, self.prefix = client, settings.prefix.rstrip("/")
        self.shards = shard_map(loaded.written, settings.shards) if settings.shards > 1 else {}

    def get(self, key: str, host: str) -> str | None:
        where = f"shards/{self.shards[host]}/shared" if host in self.shards else "shared"
        found = self.client.get(f"{self.prefix}/{where}/{key}")
        return found.value.decode(errors="replace") if found else None


def _merge(reader: _Reader, journal: Journal, loaded: LoadedFleet) -> str | None:
    said = []
    failover = loaded.written.failover
    raw = reader.get(f"failover/{pair_key(failover)}", failover.primary) if failover else None
    if raw is not None and failover is not None:
        store = FailoverStore(journal, failover)
        try:
            shared = FailoverState.model_validate_json(raw)
        except ValidationError:
            shared = None  # not a leader's writing: the journal's stands
        if shared is not None and _newer(shared, store.get()):
            store.put(shared)
            active = shared.placement.active or failover.primary
            said.append(f"failover state: {active} active, epoch {shared.placement.epoch}")
    ledger, added = Ledger(journal), 0
    for name, policy in sorted(loaded.fleet.backups.items()):
        if (text := reader.get(ledger_key(name), policy.host)) is None:
            continue
        try:
            added += ledger.merge(name, json.loads(text))
        except ValueError:
            continue
    if added:
        said.append(f"{added} snapshot(s) recorded by the leader")
    return f"from the fleet's shared state: {'; '.join(said)}" if said else None


def _newer(shared: FailoverState, local: FailoverState) -> bool:
    return (shared.placement.epoch, shared.since or 0.0) > (
        local.placement.epoch,
        local.since or 0.0,
    )
