"""The health gate: after a deploy, wait until each changed service is healthy, up to its RTO."""

from __future__ import annotations

import time
from collections.abc import Callable

from reconciler.apply.context import Report
from reconciler.hosts.observation import FleetState
from state.load import LoadedFleet

Observe = Callable[[set[str]], FleetState]
"""Observe the health of these hosts (and of what runs on them)."""
FIRST_POLL_S = 0.1  # services here start in tenths of a second: look again soon,
HEALTH_POLL_S = 1.0  # then back off, doubling, to one poll a second


def health_gate(
    loaded: LoadedFleet,
    services: dict[str, list[str]],
    observe: Observe,
    report: Report,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, str]:
    """Wait until every listed service is healthy, each up to its RTO.

    Returns {host: reason} for hosts with a service that never became healthy; the
    reason names the service, the check and its last answer.
    """
    fleet = loaded.fleet
    pending = {(h, s) for h, names in services.items() for s in names if fleet.services[s].health}
    start = clock()
    deadlines = {key: start + fleet.services[key[1]].rto.total_seconds() for key in pending}
    failed: dict[str, str] = {}
    poll = FIRST_POLL_S
    while pending:
        observed = observe({host for host, _ in pending})
        for host, name in sorted(pending):
            state = observed.hosts.get(host)
            if state is not None and not state.reachable:  # no point waiting out the RTO
                failed[host] = (
                    f"{name}: host became unreachable during the health gate: {state.error}"
                )
                report(f"{host}: FAILED health gate: {failed[host]}")
                pending = {p for p in pending if p[0] != host}
                continue
            results = observed.health.get(name, ())
            sick = [r for r in results if not r.healthy]
            if results and not sick:
                report(f"{host}: {name} healthy after {clock() - start:.1f}s")
                pending.discard((host, name))
            elif clock() >= deadlines[(host, name)]:
                last = "; ".join(f"{r.check}: {r.detail}" for r in sick) or "host not observed"
                rto = fleet.services[name].rto.total_seconds()
                failed[host] = f"{name} not healthy within its RTO ({rto:g}s): {last}"
                report(f"{host}: FAILED health gate: {failed[host]}")
                pending = {p for p in pending if p[0] != host}
        if pending:  # never past the nearest deadline: a gate fails at its RTO, not after
            sleep(max(0.0, min(poll, min(deadlines[p] for p in pending) - clock())))
            poll = min(poll * 2, HEALTH_POLL_S)
    return failed
