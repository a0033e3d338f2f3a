"""Backoffs in the fleet's memory (etcd): a new leader goes on where the last one
stopped, with the same count of failed attempts, the same wait before the next one and
the same escalation (a failure already escalated is not paged again).

One key per host (`backoff/HOST`: its services' states, `-` for the host itself),
written by the leader under its fencing token when a state changes, read once on
becoming leader. Times are stored as wall-clock seconds and kept on the loop's own
clock. A value of another shape is skipped; a write that fails is not retried: the
next change writes the host again.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import TypeGuard

from reconciler.daemon.backoff import Backoffs, BackoffState, Key
from reconciler.store.memory import Deposed, MemoryOf, MemoryUnavailable

PREFIX = "backoff"
HOST_ITSELF = "-"
TIMES = ("next_attempt", "first_failure", "healthy_since")


class SharedBackoffs:
    def __init__(
        self,
        backoffs: Backoffs,
        memory: MemoryOf,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoffs, self.memory, self.clock = backoffs, memory, clock
        backoffs.on_change = self.save

    def save(self, host: str) -> None:
        memory = self.memory(host)  # fenced by the token of the host's shard
        if memory is None:
            return
        shift = time.time() - self.clock()  # the loop's clock to the wall's
        states = {
            service or HOST_ITSELF: _shifted(asdict(state), shift)
            for (owner, service), state in self.backoffs.states.items()
            if owner == host
        }
        try:
            if states:
                memory.put(f"{PREFIX}/{host}", json.dumps(states, sort_keys=True))
            else:
                memory.delete(f"{PREFIX}/{host}")
        except (MemoryUnavailable, Deposed):
            return

    def load(self) -> str | None:
        """On becoming leader: the states the last leader left, in place of this
        controller's own for those hosts; what was taken, said in words."""
        memory = self.memory(None)
        if memory is None:
            return None
        try:
            found = memory.items(PREFIX)
        except MemoryUnavailable as exc:
            return f"backoffs not read ({exc}): counted again from here"
        shift = self.clock() - time.time()
        loaded: dict[Key, BackoffState] = {}
        for name, raw in found.items():
            host = name.removeprefix(f"{PREFIX}/")
            for service, state in _parsed(raw, shift).items():
                loaded[(host, None if service == HOST_ITSELF else service)] = state
        hosts = {host for host, _ in loaded}
        kept = {k: s for k, s in self.backoffs.states.items() if k[0] not in hosts}
        self.backoffs.states = {**kept, **loaded}
        return f"{len(loaded)} backoff(s) from the last leader" if loaded else None


def _shifted(values: dict[str, object], shift: float) -> dict[str, object]:
    return {
        name: value + shift if name in TIMES and isinstance(value, float) else value
        for name, value in values.items()
    }


def _parsed(raw: str, shift: float) -> dict[str, BackoffState]:
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    states = {}
    for service, values in found.items():
        if (state := _state(values, shift)) is not None and isinstance(service, str):
            states[service] = state
    return states


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _state(values: object, shift: float) -> BackoffState | None:
    """A BackoffState from untrusted JSON: every field of its type, finite, or None."""
    if not isinstance(values, dict) or set(values) != {f.name for f in fields(BackoffState)}:
        return None
    failures, escalated = values["failures"], values["escalated"]
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
        return None
    if not isinstance(escalated, bool):
        return None
    times: dict[str, float | None] = {}
    for name in TIMES:
        value = values[name]
        if value is None and name != "next_attempt":
            times[name] = None
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            times[name] = float(value) + shift
        else:
            return None
    next_attempt = times["next_attempt"]
    assert next_attempt is not None
    return BackoffState(
        failures, next_attempt, times["first_failure"], times["healthy_since"], escalated
    )
