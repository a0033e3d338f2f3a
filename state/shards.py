"""Shards: how `coordination.shards` cuts the fleet between controllers. Pure.

Hosts that act on each other form one unit and always share a shard, so that no apply
ever writes to a host another controller leads: a failover's primary and backup, and a
backup policy's host with the fleet hosts its repository and copies live on (sftp).
Each unit goes to the shard with the highest rendezvous hash of (shard, unit), so a
host moves only when the shard count changes or its unit does, never because another
host came or went.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from state.load import LoadedFleet
from state.placement import only_hosts
from state.repository import repository_host_name
from state.spec.fleet import Fleet


def shard_units(fleet: Fleet) -> list[frozenset[str]]:
    """The fleet's hosts grouped into units that must share a shard, sorted."""
    parent = {name: name for name in fleet.hosts}
    by_address = {host.address: name for name, host in fleet.hosts.items()}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def join(a: str, b: str | None) -> None:
        b = by_address.get(b, b) if b is not None else None
        if b in parent and a in parent:
            parent[root(a)] = root(b)

    if fleet.failover is not None:
        join(fleet.failover.primary, fleet.failover.backup)
    for policy in fleet.backups.values():
        join(policy.host, repository_host_name(policy.repository))
        for copy in policy.copies.values():
            join(policy.host, repository_host_name(copy.repository))
    units: dict[str, set[str]] = {}
    for name in fleet.hosts:
        units.setdefault(root(name), set()).add(name)
    return sorted((frozenset(u) for u in units.values()), key=lambda u: min(u))


def _weight(shard: int, unit: frozenset[str]) -> bytes:
    return hashlib.sha256(f"{shard}\0{min(unit)}".encode()).digest()


def shard_map(fleet: Fleet, shards: int) -> dict[str, int]:
    """Each host's shard, 0 to `shards - 1` (all 0 with one shard)."""
    found: dict[str, int] = {}
    for unit in shard_units(fleet):
        shard = max(range(shards), key=lambda k: _weight(k, unit)) if shards > 1 else 0
        found.update(dict.fromkeys(unit, shard))
    return found


def preference(name: str, shards: int) -> list[int]:
    """The order in which controller `name` campaigns for shards: its own rendezvous
    order, so that controllers starting together reach for different shards first."""
    return sorted(range(shards), key=lambda k: hashlib.sha256(f"{name}\0{k}".encode()).digest())


def shard_view(loaded: LoadedFleet, hosts: set[str]) -> LoadedFleet:
    """`loaded` as a controller leading `hosts` sees it: those hosts and what runs on
    them, the failover only with its pair (which shares a shard)."""
    spec = only_hosts(loaded.spec, hosts) if loaded.spec is not None else None
    return replace(loaded, fleet=only_hosts(loaded.fleet, hosts), spec=spec)
