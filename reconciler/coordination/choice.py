"""The leadership a fleet's `coordination` settings ask for."""

from __future__ import annotations

from collections.abc import Callable

from reconciler.coordination.leader import EtcdLeadership, Leadership, LocalLeadership
from reconciler.coordination.sharded import ShardedLeadership
from state.spec.controller import Coordination, EtcdCoordination


def leadership_for(
    coordination: Coordination, name: str, report: Callable[[str], None], every: bool = False
) -> Leadership:
    """One local controller, one leader on etcd, or a leader per shard; `every`: a
    one-shot run, which needs the whole fleet (every shard, when it is sharded)."""
    if isinstance(coordination, EtcdCoordination):
        if coordination.shards > 1:
            return ShardedLeadership(coordination, name, report, every)
        return EtcdLeadership(coordination, name, report)
    return LocalLeadership()
