"""What a full pass of the watch loop does besides converging, each when it is due: the
monthly DR test (`drill_every`, counted from the last drill, this controller's or with
etcd any leader's, or the loop's first start) and the journal's retention
(`journal_retention`, applied once a day)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from reconciler.coordination.guard import apply_guard
from reconciler.coordination.leader import Leadership
from reconciler.events.bus import EventBus
from reconciler.flows.drill import Drill, last_dr_drill
from reconciler.store.journal import Journal
from reconciler.store.lock import hosts_lock
from reconciler.store.schedule import Ran, Schedule
from state.load import LoadedFleet

PRUNE_EVERY_S = 86400.0
LOCK_TIMEOUT_S = 5.0


class Upkeep:
    def __init__(
        self,
        journal: Journal,
        client: httpx.Client,
        bus: EventBus,
        report: Callable[[str], None],
        first_start: float,
    ) -> None:
        self.journal, self.client, self.bus, self.report = journal, client, bus, report
        self.first_start = first_start
        self.pruned_at = 0.0  # applied on the first full pass

    def run_due(self, loaded: LoadedFleet, leadership: Leadership) -> None:
        self._drill_if_due(loaded, leadership)
        self._prune_if_due(loaded)

    def _drill_if_due(self, loaded: LoadedFleet, leadership: Leadership) -> None:
        every = loaded.fleet.reconciler.drill_every
        if every is None:
            return
        local = last_dr_drill(self.journal)
        schedule = Schedule(leadership.memory())  # with etcd: a drill another leader ran
        last = schedule.last("dr-drill", "fleet", Ran(local.at) if local is not None else None)
        since = last.at if last is not None else self.first_start
        if time.time() - since < every.total_seconds():
            return
        self.report(f"DR drill due (drill_every {every}): running it")
        with hosts_lock(self.journal.path.parent, loaded.fleet, LOCK_TIMEOUT_S, self.report):
            guard = apply_guard(leadership, loaded)
            Drill(loaded, self.journal, self.client, self.bus, self.report, guard).run()
        schedule.ran("dr-drill", "fleet", time.time())

    def _prune_if_due(self, loaded: LoadedFleet) -> None:
        if time.time() - self.pruned_at < PRUNE_EVERY_S:
            return
        self.pruned_at = time.time()
        retention = loaded.fleet.reconciler.journal_retention.total_seconds()
        pruned = self.journal.prune(retention)
        if any(pruned.values()):
            self.report(
                f"journal: pruned {pruned['runs']} runs, {pruned['results']} results and "
                f"{pruned['events']} events older than {retention / 86400:g} days"
            )
