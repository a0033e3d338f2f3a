"""Keeping the active host's lease while the controller is busy.

A probe pass renews the lease; but an apply, a model pull or a move can outlast
`fence_after`, and the primary would then fence itself under a healthy controller. So
while the controller works, a thread renews the lease every quarter of `fence_after`,
from its own journal connection. It is safe against moves by construction: it renews
with the recorded epoch, and a host refuses an epoch lower than one a move has told it.
During a move it renews only once the new placement is recorded.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from reconciler.flows.background import in_background
from reconciler.hosts.commands import set_lease
from reconciler.store.failover_state import FailoverStore
from reconciler.store.journal import Journal
from state.load import LoadedFleet


@contextlib.contextmanager
def leases_kept(
    current: Callable[[], LoadedFleet | None], journal_path: Path, renew_first: bool = True
) -> Iterator[None]:
    """Renew the lease of the host running the failover services until the block ends.
    `current` returns the spec in force (the loop's may change on reload).

    With `renew_first`, the first renewal is done before the block starts: a command run
    a while after the last renewal (a drill after a backup, with no `reconcile watch`)
    finds the primary fenced, and its guarded units refuse to start until it holds a
    lease again. The loop and apply pass False: their own failover pass renews first."""
    wait = 0.0
    if renew_first:
        first = Journal(journal_path)
        try:
            wait = _renew(current, first)
        finally:
            first.close()

    def keep(stop: threading.Event) -> None:
        nonlocal wait
        journal = Journal(journal_path)
        try:
            while not stop.wait(wait):
                wait = _renew(current, journal)
        finally:
            journal.close()

    with in_background("leases", keep):
        yield


def _renew(current: Callable[[], LoadedFleet | None], journal: Journal) -> float:
    """Renew the active host's lease now; the seconds until the next renewal is due."""
    loaded = current()
    failover = loaded.written.failover if loaded is not None else None
    if loaded is None or failover is None:
        return 5.0
    seconds = failover.fence_after.total_seconds()
    store = FailoverStore(journal, failover)
    state = store.get()
    if state.move is None or state.move.step == "deploy":
        active = state.placement.active or failover.primary
        epoch = state.placement.epoch
        if set_lease(loaded.written.hosts[active], epoch, int(seconds)).ok:
            # The failover clock must not start before this lease runs out.
            store.renewed(active, time.time(), epoch)
    return max(1.0, seconds / 4)
