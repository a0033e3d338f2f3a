"""Per-service backoff when self-healing fails (Kubernetes CrashLoopBackOff semantics).

Pure bookkeeping over a clock value: after the n-th consecutive failure the next
attempt waits initial * 2**(n-1), capped at max; healthy for `reset` and it starts
over. It also decides when a failure escalates: after N attempts or T unresolved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from state.spec.controller import ReconcilerSettings
from state.spec.fleet import Fleet

Key = tuple[str, str | None]  # (host, service); service None means the host itself


@dataclass
class BackoffState:
    failures: int = 0
    next_attempt: float = 0.0
    first_failure: float | None = None
    healthy_since: float | None = None
    escalated: bool = False


def _prints(fleet: Fleet) -> dict[Key, str]:
    """What each key's desired state is, as text to compare (a host's own fields for
    the host itself)."""
    prints: dict[Key, str] = {(n, None): h.model_dump_json() for n, h in fleet.hosts.items()}
    for name, service in fleet.services.items():
        prints[(service.host, name)] = service.model_dump_json()
    return prints


@dataclass(frozen=True)
class Failure:
    delay: float
    attempts: int
    escalate: bool


class Backoffs:
    def __init__(self, settings: ReconcilerSettings, fleet: Fleet | None = None) -> None:
        self.settings = settings
        self.states: dict[Key, BackoffState] = {}
        self.prints = _prints(fleet) if fleet is not None else {}
        self.on_change: Callable[[str], None] = lambda _host: None
        """Told the host whose states changed (daemon.shared_backoffs keeps them in etcd)."""

    def follow(self, fleet: Fleet) -> None:
        """A new spec in force (this controller's share of it): its settings, and a fresh
        start for every service (or host) whose desired state changed, so that a
        person's fix is tried at once, not after the backoff the broken version earned
        (a new pod template in Kubernetes)."""
        self.settings, before, self.prints = fleet.reconciler, self.prints, _prints(fleet)
        for key in [k for k in self.states if before.get(k) != self.prints.get(k)]:
            del self.states[key]
            if key[0] in fleet.hosts:  # another share's host: its leader keeps its record
                self.on_change(key[0])

    def blocked(self, key: Key, now: float) -> bool:
        state = self.states.get(key)
        return state is not None and now < state.next_attempt

    def record_failure(self, key: Key, now: float) -> Failure:
        state = self.states.setdefault(key, BackoffState())
        state.failures += 1
        state.healthy_since = None
        if state.first_failure is None:
            state.first_failure = now
        initial = self.settings.backoff_initial.total_seconds()
        delay = min(initial * 2 ** (state.failures - 1), self.settings.backoff_max.total_seconds())
        state.next_attempt = now + delay
        overdue = now - state.first_failure >= self.settings.escalate_after.total_seconds()
        due = state.failures >= self.settings.escalate_after_attempts or overdue
        escalate = due and not state.escalated
        state.escalated = state.escalated or escalate
        self.on_change(key[0])
        return Failure(delay, state.failures, escalate)

    def recovered(self, key: Key) -> bool:
        """Whether `key` failed and is now seen healthy for the first time since: the
        moment its condition clears (call before `record_healthy`)."""
        state = self.states.get(key)
        return state is not None and state.failures > 0 and state.healthy_since is None

    def record_healthy(self, key: Key, now: float) -> bool:
        """Note a healthy observation; True when this resets an earlier backoff."""
        state = self.states.get(key)
        if state is None:
            return False
        if state.healthy_since is None:
            state.healthy_since = now
            self.on_change(key[0])
        if now - state.healthy_since >= self.settings.backoff_reset.total_seconds():
            del self.states[key]
            self.on_change(key[0])
            return True
        return False

    def in_force(self, now: float) -> dict[str, dict[str, float | int]]:
        """Backoffs still delaying an attempt, for `reconcile status`."""
        return {
            f"{host}/{service or '*'}": {
                "failures": s.failures,
                "retry_in": round(s.next_attempt - now, 1),
            }
            for (host, service), s in self.states.items()
            if s.next_attempt > now
        }
