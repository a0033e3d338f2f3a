"""Self-healing's bookkeeping for the watch loop: which hosts a probe found drifted,
which keys backoff holds back, and what a heal's outcome means for backoff, events and
escalation (Kubernetes CrashLoopBackOff semantics; the runbook's Level 1 to operator)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.apply.result import ApplyResult
from reconciler.daemon.backoff import Backoffs, Key
from reconciler.engine.plan import Plan
from reconciler.events.bus import Event, EventBus
from reconciler.hosts.observation import FleetState
from state.load import LoadedFleet
from state.spec.base import Severity


def drifted_hosts(watched: LoadedFleet, observed: FleetState) -> set[str]:
    """Hosts a probe found out of the spec: unreachable, a failing health check, or a
    missing model. A lost primary is left to the failover pass, which pages and counts."""
    drifted = set()
    failover = watched.written.failover
    for name, service in watched.fleet.services.items():
        host = observed.hosts.get(service.host)
        if host is None:
            continue  # in another slice
        if not host.reachable and failover is not None and service.host == failover.primary:
            continue  # lost since the failover pass: its next pass pages and counts
        if not host.reachable or any(not r.healthy for r in observed.health.get(name, ())):
            drifted.add(service.host)
    for model_set in watched.fleet.models:
        state = observed.models.get(model_set.service)
        if state and not state.error and set(model_set.present) - set(state.present):
            drifted.add(watched.fleet.services[model_set.service].host)
    return drifted


def settle(
    backoffs: Backoffs,
    bus: EventBus,
    report: Callable[[str], None],
    planned: Iterable[Key],
    scope: set[str] | None,
    now: float,
) -> set[Key]:
    """Keys no longer planned have recovered (their incidents resolve) or served their
    healthy time (backoff reset); of those planned, the ones backoff holds back."""
    keys = set(planned)
    for key in list(backoffs.states):
        if key in keys or (scope is not None and key[0] not in scope):
            continue
        if backoffs.recovered(key):  # its condition cleared: incidents resolve
            bus.emit(Event("P3", "healed", f"{label(key)} recovered", key[0], key[1]))
        if backoffs.record_healthy(key, now):
            report(f"{key[0]}/{key[1] or '*'}: healthy long enough, backoff reset")
    return {k for k in keys if backoffs.blocked(k, now) or backoffs.blocked((k[0], None), now)}


def account(
    backoffs: Backoffs,
    bus: EventBus,
    escalate_as: Severity,
    plan: Plan,
    result: ApplyResult,
    now: float,
) -> None:
    """Backoff and events per (host, service) that the pass tried to heal."""
    remaining = (
        {(a.host, a.service) for a in result.remaining.actions} if result.remaining else set()
    )
    for key in sorted({(a.host, a.service) for a in plan.actions}, key=str):
        error = result.hosts[key[0]].error if key[0] in result.hosts else None
        failed = key in remaining or bool(
            error and (key[1] is None or key[1] in error or "unreachable" in error)
        )
        if failed:
            _failed(backoffs, bus, escalate_as, key, now, error or "still pending after apply")
        else:
            bus.emit(Event("P3", "healed", f"{label(key)} converged", key[0], key[1]))


def _failed(
    backoffs: Backoffs, bus: EventBus, escalate_as: Severity, key: Key, now: float, reason: str
) -> None:
    failure = backoffs.record_failure(key, now)
    bus.emit(
        Event(
            "P3",
            "heal_failed",
            f"{label(key)} not healed (attempt {failure.attempts}); retry in "
            f"{failure.delay:g}s: {reason}",
            key[0],
            key[1],
            {"attempts": failure.attempts, "retry_in": failure.delay},
        )
    )
    if failure.escalate:
        bus.emit(
            Event(
                escalate_as,
                "escalation",
                f"self-healing of {label(key)} failed after {failure.attempts} attempts: {reason}",
                key[0],
                key[1],
                {"attempts": failure.attempts, "requested_action": "operator_intervention"},
            )
        )


def label(key: Key) -> str:
    return f"{key[0]}/{key[1]}" if key[1] else f"host {key[0]}"
