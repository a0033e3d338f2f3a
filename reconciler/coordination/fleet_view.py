"""The fleet's shared state as any controller reads it, leading or not: before a command
that only looks (`status`, `--dry-run`, `backup list`) plans on a follower's machine,
the failover placement and the snapshot ledgers the leaders wrote to etcd are merged
into this controller's journal, so it shows the fleet's, not what it last saw itself.

Merging only ever moves the journal forward: a ledger merge adds snapshots (the first
verdict stands), and a failover state replaces the journal's only when its placement is
newer (a higher epoch, or the same epoch changed later). The leader's own journal is
always at least as new as what it wrote, so a read on its machine changes nothing."""

from __future__ import annotations

from pydantic import ValidationError

from reconciler.coordination.choice import leadership_for
from reconciler.coordination.etcd import EtcdUnavailable
from reconciler.coordination.guard import failover_key
from reconciler.coordination.leader import Leadership
from reconciler.coordination.shared_ledger import pull_ledgers
from reconciler.store.failover_state import FailoverState, FailoverStore
from reconciler.store.journal import Journal
from state.load import LoadedFleet
from state.spec.controller import EtcdCoordination


def catch_up(loaded: LoadedFleet, journal: Journal) -> str | None:
    """Merge the fleet's shared failover state and ledgers into `journal`; what moved,
    or why nothing could be read (etcd away), or None (nothing new, or no etcd)."""
    coordination = loaded.fleet.reconciler.coordination
    if not isinstance(coordination, EtcdCoordination):
        return None
    # A reader: it never campaigns, so it only reads the keys the leaders wrote.
    reader = leadership_for(coordination, "fleet-view", lambda _line: None)
    try:
        reader.follow(loaded)  # a sharded fleet keeps them under their hosts' shards
        return _merge(reader, journal, loaded)
    except EtcdUnavailable as exc:
        return f"the fleet's failover state and ledger not read ({exc}): this journal's shown"
    finally:
        reader.close()


def _merge(reader: Leadership, journal: Journal, loaded: LoadedFleet) -> str | None:
    said = []
    key, failover = failover_key(loaded), loaded.written.failover
    raw = reader.shared_get(key, failover.primary) if key and failover else None
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
    if added := pull_ledgers(reader, journal, loaded):
        said.append(f"{added} snapshot(s) recorded by the leader")
    return f"from the fleet's shared state: {'; '.join(said)}" if said else None


def _newer(shared: FailoverState, local: FailoverState) -> bool:
    return (shared.placement.epoch, shared.since or 0.0) > (
        local.placement.epoch,
        local.since or 0.0,
    )
