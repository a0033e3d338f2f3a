"""Leadership by shard: several controllers on one etcd, each leading a share of the hosts.

`coordination.shards: N` (state.shards) cuts the fleet into N shards. Each shard has
its own leader key, `PREFIX/shards/K/leader`, created in the same transaction as the
single leader key (create only if absent) and held under the controller's one lease,
so a controller that dies loses all its shards when that lease runs out (`ttl`), and
the others take them at their next campaign. The key's create revision is the
shard's fencing token: etcd revisions grow across all keys, so a new leader's token
is above any earlier one and the hosts' check (state.fence) is unchanged.

Each campaign counts the live controllers (`PREFIX/controllers/`, each under its own
lease) and takes free shards, in its own rendezvous order, up to its fair share,
`ceil(N / controllers)`; one holding more gives the extra up (as Kafka's consumer
groups rebalance), between passes. A one-shot run (`every`) needs all the shards: it
takes them all or holds none, and is not counted among the controllers.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable

from reconciler.coordination.etcd import EtcdUnavailable
from reconciler.coordination.leader import EtcdLeadership, NotLeader, describe
from state.load import LoadedFleet
from state.shards import preference, shard_map, shard_view
from state.spec.controller import EtcdCoordination


class ShardedLeadership(EtcdLeadership):
    def __init__(
        self,
        settings: EtcdCoordination,
        name: str,
        report: Callable[[str], None],
        every: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, name, report, clock)
        self.count = settings.shards
        self.every = every
        self.registers = not every
        self.held: dict[int, int] = {}  # shard -> its fencing token
        self.told: frozenset[int] = frozenset()  # what `regrouped` last reported
        self.kept: frozenset[int] = frozenset()  # led before that report and after it
        self._map: tuple[str, dict[str, int]] = ("", {})

    def shard_key(self, shard: int) -> str:
        return f"{self.prefix}/shards/{shard}/leader"

    # -- campaigning ------------------------------------------------------------------
    def acting(self) -> bool:
        """Leading at least one shard (every shard, for a one-shot run), with a renewal
        confirmed less than `ttl - retry_timeout` ago."""
        full = len(self.held) == self.count or not self.every
        return full and super().acting()

    def fence(self, host: str | None = None) -> tuple[str, int | None]:
        """The shard of `host` and its token, None when another controller leads it (a
        host's keys are written only by its shard's leader); without a host, a shard led
        here (the fleet-wide memory's writer leads one)."""
        held = dict(self.held)
        if not held or not self.acting():
            return self.leader_key, None
        if host is not None:
            shard = self._map[1].get(host, -1)
            return self.shard_key(max(shard, 0)), held.get(shard)
        shard = min(held)
        return self.shard_key(shard), held[shard]

    def campaign(self) -> bool:
        started = self.clock()
        try:
            self._renew(started)
            with self.renewing:  # the keep-alive thread steps down on a lost lease
                self._rebalance()
        except EtcdUnavailable as exc:
            self.problem = f"{exc} (not acting)"
            if self.held and not super().acting():
                self.step_down("shard keys not renewed within ttl - retry_timeout")
        self._keep_alive_in_background()
        return self.acting()

    def _rebalance(self) -> None:
        if not self.lease:
            return
        share = self.count if self.every else self._fair_share()
        for shard in sorted(self.held, reverse=True)[: max(0, len(self.held) - share)]:
            self._give_up(shard, f"rebalancing: {share} shard(s) each")
        others: dict[int, str] = {}
        for shard in preference(self.name, self.count):
            if len(self.held) >= share:
                break
            if shard not in self.held and (holder := self._take(shard)):
                others[shard] = holder
        if self.every and len(self.held) < self.count:
            for shard in list(self.held):  # all or none: never starve the controllers
                self._give_up(shard, "a one-shot run needs every shard")
        with self.lock:  # what `acting` and the base class's renewal look at
            self.token = min(self.held.values()) if self.held else None
        if self.held and (not self.every or len(self.held) == self.count):
            self.problem = ""
        elif others:
            said = ", ".join(f"shard {k}: {n}" for k, n in sorted(others.items()))
            self.problem = f"led by others ({said})"
        else:
            self.problem = "no shard free"

    def _fair_share(self) -> int:
        live = len(self.client.get_prefix(f"{self.prefix}/controllers/"))
        return math.ceil(self.count / max(1, live))

    def _take(self, shard: int) -> str | None:
        """Try to lead `shard`; the holder's name when another leads it."""
        value = json.dumps({"name": self.name, "since": time.time()}).encode()
        created, revision, holder = self.client.create(self.shard_key(shard), value, self.lease)
        if created:
            self.held[shard] = revision
            self.report(f"leader: {self.name} leads shard {shard} (fencing token {revision})")
            return None
        if holder is not None and holder.lease == self.lease:  # ours, across an etcd outage
            self.held[shard] = holder.create_revision
            return None
        found = describe(holder)
        return found.name if found else "?"

    def _give_up(self, shard: int, why: str) -> None:
        token = self.held.pop(shard)
        self.report(f"leader: {self.name} gives up shard {shard} (token {token}): {why}")
        with contextlib.suppress(EtcdUnavailable):
            self.client.delete_if_created_at(self.shard_key(shard), token)

    def step_down(self, why: str) -> None:
        with self.renewing:
            if not self.held:
                return
            for shard in sorted(self.held):
                self._give_up(shard, why)
            with self.lock:
                self.token = None
            self.problem = f"stepped down: {why}"

    # -- what the controller acts on ------------------------------------------------
    def follow(self, loaded: LoadedFleet) -> dict[str, int]:
        """Each host's shard in the spec `loaded` (kept for the shared state's keys).
        `loaded` may be a share already cut (shard_view): shards hold whole units, so a
        share maps its hosts as the whole fleet does, and what it lacks is kept."""
        sha, known = self._map
        if sha != loaded.sha256:
            known = {}
        if not loaded.written.hosts.keys() <= known.keys():
            known = {**known, **shard_map(loaded.written, self.count)}
        self._map = (loaded.sha256, known)
        return known

    def scope(self, loaded: LoadedFleet) -> LoadedFleet:
        """The hosts of the shards this controller leads, and what runs on them."""
        shards = self.follow(loaded)
        return shard_view(loaded, {h for h, k in shards.items() if k in self.held})

    def tokens_for(self, loaded: LoadedFleet, hosts: list[str]) -> dict[int, list[str]]:
        """Each host's shard token; NotLeader for a host of a shard not led here."""
        shards, grouped = self.follow(loaded), dict[int, list[str]]()
        for host in hosts:
            token = self.held.get(shards.get(host, -1))
            if token is None:
                raise NotLeader(f"not applying: {host} is in a shard another controller leads")
            grouped.setdefault(token, []).append(host)
        return grouped

    def regrouped(self) -> bool:
        """Whether the shards led changed since the last call (and some are led)."""
        now = frozenset(self.held)
        changed, self.kept, self.told = now != self.told, now & self.told, now
        return changed and bool(now)

    # -- shared state, per shard -----------------------------------------------------
    def shared_put(self, key: str, value: str, host: str | None = None) -> bool:
        """Write under the shard of `host`, or of every shard led (`host` None), each
        only while that shard's token still holds."""
        if not self.acting():
            return False
        shards = self._map[1]
        targets = [shards[host]] if host is not None and host in shards else list(self.held)
        for shard in targets:
            token = self.held.get(shard)
            if token is None:
                return False
            full = f"{self.prefix}/shards/{shard}/shared/{key}"
            try:
                done = self.client.put_if_created_at(
                    self.shard_key(shard), token, full, value.encode()
                )
            except EtcdUnavailable as exc:
                self.problem = f"{exc} (shared state not written)"
                return False
            if not done:
                self.step_down(f"etcd refused the token of shard {shard} (another leads it)")
                return False
        return True

    def shared_get(self, key: str, host: str | None = None) -> str | None:
        """What the shard of `host` (or the first shard led) holds; None for a shard led
        here since before the last regrouping: this controller's journal is newer than
        what it last wrote there (a probe tick's failover timers are not all shared)."""
        shards = self._map[1]
        shard = shards.get(host, -1) if host is not None else min(self.held, default=-1)
        if shard < 0 or shard in self.kept:
            return None
        found = self.client.get(f"{self.prefix}/shards/{shard}/shared/{key}")
        return found.value.decode() if found else None


def shares(leadership: object, leading: bool) -> dict[str, bool]:
    """Which shards this controller leads, for `/metrics`: {shard: leads}; a fleet
    without shards is shard "0"."""
    if isinstance(leadership, ShardedLeadership):
        return {str(shard): shard in leadership.held for shard in range(leadership.count)}
    return {"0": leading}
