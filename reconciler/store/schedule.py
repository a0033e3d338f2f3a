"""When each scheduled verification last ran, as the fleet remembers it.

The journal's events say when this controller last checked, drilled or copied a policy
(and ran the DR drill). With etcd, the fleet's memory also says when any controller did
(`schedule/KIND/SUBJECT`: `{"at": ..., "ok": ...}`), so a new leader does not run again
what the one before it ran an hour ago. The later record counts. A record that cannot
be written (etcd away, or this controller deposed) is left to the journal: the worst
case is one verification run once more, never one skipped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from reconciler.store.memory import Deposed, Memory, MemoryOf, MemoryUnavailable

PREFIX = "schedule"


@dataclass(frozen=True)
class Ran:
    at: float
    ok: bool = True


class Schedule:
    """The fleet's record of verifications (None: one controller, the journal alone)."""

    def __init__(self, memory: Memory | None, writer: MemoryOf | None = None) -> None:
        self.memory, self.writer = memory, writer  # writes fenced by the subject's host
        self._shared: dict[str, Ran] | None = None

    def last(self, kind: str, subject: str, local: Ran | None) -> Ran | None:
        """The later of this journal's record (`local`) and the fleet's."""
        shared = self._read().get(f"{kind}/{subject}")
        if shared is None or (local is not None and local.at >= shared.at):
            return local
        return shared

    def ran(
        self, kind: str, subject: str, at: float, ok: bool = True, host: str | None = None
    ) -> None:
        """Record a run; with shards, only the leader of `host`'s shard may (the policy's
        host: a deposed leader of that shard records nothing)."""
        memory = self.writer(host) if self.writer is not None and host else self.memory
        if memory is None:
            return
        record = Ran(at, ok)
        try:
            memory.put(f"{PREFIX}/{kind}/{subject}", json.dumps(record.__dict__))
        except (MemoryUnavailable, Deposed):
            return  # the journal has it: at worst a successor runs it once more
        self._read()[f"{kind}/{subject}"] = record

    def _read(self) -> dict[str, Ran]:
        """The fleet's records, read once per Schedule (one request per verification
        round); a record of another shape is skipped."""
        if self._shared is None:
            self._shared = {}
            if self.memory is not None:
                try:
                    found = self.memory.items(PREFIX)
                except MemoryUnavailable:
                    found = {}
                for key, raw in found.items():
                    if (record := _parsed(raw)) is not None:
                        self._shared[key.removeprefix(f"{PREFIX}/")] = record
        return self._shared


def _parsed(raw: str) -> Ran | None:
    try:
        value = json.loads(raw)
        at, ok = value["at"], value.get("ok", True)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(at, int | float) or not math.isfinite(at) or not isinstance(ok, bool):
        return None
    return Ran(float(at), ok)
