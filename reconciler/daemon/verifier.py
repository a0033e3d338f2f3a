"""Backup checks, drills and copies beside the loop, never in its way.

A `restic check` of a large (or damaged) repository, a drill's restore or a copy can take
minutes; run in the loop, they would hold back the probes, and with them a failover.
Here they run in one worker thread at a time, with the journal opened on its own
connection. What they emit is kept and handed to the loop's bus by `drain`, on the
loop's thread (the bus's sinks write to the loop's journal), before the next run is
judged due: a verification is never run twice for want of its record.

A worker that is still running when the loop stops is left to end with the process; a
restic it started runs to its own timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from reconciler.apply.context import Report
from reconciler.events.bus import Event, EventBus
from reconciler.flows.verifications import run_due_verifications
from reconciler.store.journal import Journal
from reconciler.store.memory import MemoryOf
from reconciler.store.schedule import Schedule
from state.load import LoadedFleet


class Verifier:
    """The scheduled verifications of the fleet's backups, in a worker thread."""

    def __init__(self, journal_path: Path, memory: MemoryOf | None = None) -> None:
        self.journal_path = journal_path
        self.memory = memory  # the fleet's, with etcd: when each verification last ran
        self._worker: threading.Thread | None = None
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def start_due(self, loaded: LoadedFleet, bus: EventBus, report: Report) -> bool:
        """Start the verifications due under `loaded`, unless some still run; False
        when they do (they are judged due again after those end)."""
        if self.running:
            self.drain(bus, report)
            return False
        self.drain(bus, report)  # all it emitted: the worker has ended
        self._worker = threading.Thread(
            target=self._verify, args=(loaded,), name="verifications", daemon=True
        )
        self._worker.start()
        return True

    def drain(self, bus: EventBus, report: Report) -> None:
        """Emit on `bus` what the worker emitted, and report its lines, in order."""
        while True:
            try:
                bus.emit(self._events.get_nowait())
            except queue.Empty:
                break
        while True:
            try:
                report(self._lines.get_nowait())
            except queue.Empty:
                break

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for the worker to end; whether it has."""
        if self._worker is not None:
            self._worker.join(seconds)
        return not self.running

    def _verify(self, loaded: LoadedFleet) -> None:
        journal = Journal(self.journal_path)
        kept = EventBus()
        kept.subscribe(self._events.put)
        try:
            schedule = Schedule(self.memory(), self.memory) if self.memory else Schedule(None)
            for line in run_due_verifications(loaded, journal, kept, time.time(), schedule):
                self._lines.put(line)
        except Exception as exc:  # a worker's failure is a line, never a dead thread unseen
            self._lines.put(f"backup verifications failed: {exc!r}")
        finally:
            journal.close()
