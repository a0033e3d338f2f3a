"""How `reconcile watch` tells a supervisor it is alive and making progress: systemd's
watchdog (with the loop's real stall limit), its STATUS= line, and `/readyz`.

The stall limit is how long a pass may go without a sign of progress: twice the largest
RTO (a health gate may wait one RTO per wave of heals) plus 10 minutes. At start the
watchdog is set to it (WATCHDOG_USEC=), so systemd restarts a loop stuck that long, and
not `WatchdogSec=` after its last ping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from reconciler.daemon.sdnotify import sd_notify, watchdog_interval
from state.load import LoadedFleet


class WatchLoop(Protocol):
    """What this module reads of the loop (reconciler.daemon.loop.WatchLoop), without
    importing it: the loop imports this module."""

    spec: Any
    status: Any
    leadership: Any
    leading: bool
    last_beat: float
    suspended_said: str
    stop: threading.Event
    clock: Callable[[], float]


PING_EVERY_S = 10.0


def largest_rto(loaded: LoadedFleet | None) -> float:
    """The largest RTO of the fleet's services, in seconds (0 without any)."""
    rtos = [s.rto.total_seconds() for s in loaded.fleet.services.values()] if loaded else []
    return max(rtos, default=0.0)


def stall_limit(loaded: LoadedFleet | None) -> float:
    """Twice the largest RTO of the fleet, plus 10 minutes."""
    return 2 * largest_rto(loaded) + 600.0


def start_watchdog(loop: WatchLoop, limit: float) -> threading.Thread | None:
    """Set systemd's watchdog to `limit`, then ping it whenever the loop has beaten since
    the last ping: a loop that stops beating is restarted `limit` after its last sign of
    life (and at most PING_EVERY_S more)."""
    if watchdog_interval() is None:
        return None
    sd_notify(f"WATCHDOG_USEC={int(limit * 1_000_000)}")
    every = min(PING_EVERY_S, limit / 4)

    def ping() -> None:
        pinged = float("-inf")
        while not loop.stop.wait(every):
            beat = loop.last_beat
            if beat > pinged:
                sd_notify("WATCHDOG=1")
                pinged = beat

    thread = threading.Thread(target=ping, name="watchdog", daemon=True)
    thread.start()
    return thread


def readiness(loop: WatchLoop, limit: float) -> str | None:
    """Why the loop is not ready (`/readyz` says it with 503), or None: a state file in
    force, progress within `limit`, and etcd reachable when coordination uses it."""
    if loop.spec.loaded is None:
        return "no valid state file is in force"
    quiet = loop.clock() - loop.last_beat
    if quiet > limit:
        return f"no progress for {quiet:.0f}s (the stall limit is {limit:.0f}s)"
    etcd = getattr(loop.leadership, "etcd_error", None)
    if etcd:
        return f"etcd unreachable: {etcd}"
    return None


def status_line(loop: WatchLoop) -> str:
    """systemd's STATUS= for `systemctl status`: how the fleet was at the last pass."""
    status = loop.status
    when = time.strftime("%H:%M:%S", time.localtime(status.last_pass)) if status.last_pass else "-"
    parts = [
        "leading" if loop.leading else "standby",
        f"{status.passes} passes, last ({status.last_kind or '-'}) at {when}",
        f"{len(status.pending)} pending" if status.pending else "in sync",
    ]
    down = sorted(h for h, up in status.hosts.items() if not up)
    if down:
        parts.append(f"unreachable: {', '.join(down)}")
    if status.spec_error:
        parts.append("state file REJECTED (last good in force)")
    if loop.suspended_said:
        parts.append("SUSPENDED")
    return "; ".join(parts)
