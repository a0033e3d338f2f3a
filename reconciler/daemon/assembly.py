"""`reconcile watch`, assembled: every part of the daemon and every background task it
runs, named here and nowhere else.

| thread           | what it does                                               | stops on        |
|------------------|------------------------------------------------------------|-----------------|
| main             | the loop: passes, probes, failover, heals (`loop`)         | SIGTERM, SIGINT |
| `watchfiles`     | a save of the state file wakes the loop                    | the loop's stop |
| `watchdog`       | WATCHDOG=1 to systemd while passes progress (`health`)     | process exit    |
| `outbox`         | notifications off the loop (`flows.outbox_sender`)         | the loop's end  |
| `forge`          | pull request reviews and apply statuses (`forge_desk`)     | `close()`       |
| `verifications`  | backup checks, drills and copies when due (`verifier`)     | the loop's stop |
| `leases`         | the active host's lease during a long move (`flows.leases`) | the move's end |
| `dashboard`      | the page, /metrics, /healthz, /readyz (`--http`)           | `should_exit`   |
| `hooks`          | Gitea's webhook on its own listener (`--hooks`)            | `should_exit`   |
| `etcd-keepalive` | the leadership lease (`coordination.leader`)               | `close()`       |

The CLI parses and prints; what runs is built here from `DaemonOptions`.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from reconciler.coordination.choice import leadership_for
from reconciler.coordination.etcd_incidents import incidents_for
from reconciler.coordination.leader import controller_name
from reconciler.coordination.sharded import shares
from reconciler.daemon.forge_desk import ForgeDesk
from reconciler.daemon.health import largest_rto, readiness, stall_limit, start_watchdog
from reconciler.daemon.loop import WatchLoop
from reconciler.daemon.spec_source import SpecSource
from reconciler.events.bus import EventBus
from reconciler.events.sinks import journal_sink, log_sink
from reconciler.flows.incident_desk import IncidentDesk
from reconciler.flows.outbox_sender import BUSY_S, sending
from reconciler.forge.webhook import Hook, gitea_hook
from reconciler.store.journal import Journal
from reconciler.untrusted.http import bounded_client
from reconciler.web.app import is_loopback, make_app, make_hooks_app, serve_in_background
from reconciler.web.metrics import PassMetrics
from state.load import LoadedFleet
from state.spec.controller import EtcdCoordination
from state.spec.notifications import Notifications

Report = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DaemonOptions:
    state: Path
    journal: Path
    controller: str | None = None
    http: str | None = None  # HOST:PORT of the dashboard, /metrics and the probes
    hooks: str | None = None  # HOST:PORT of the webhook alone
    max_passes: int | None = None
    max_seconds: float | None = None


OUTBOX_IDLE_S = 5.0
"""With etcd, how often an empty shared outbox is looked at (each look is a request);
the desk wakes the sender at once when it queues, so this bounds only a standby's look
and a page queued by a one-shot command on another machine."""


def run_daemon(options: DaemonOptions, report: Report, progress: Progress) -> int:
    """Run until stopped (or the bounds in `options`); the loop's exit code."""
    journal = Journal(options.journal)
    bus = EventBus()
    spec = SpecSource(options.state.resolve(), bus, journal)  # status finds it by that
    bus.subscribe(journal_sink(journal))
    bus.subscribe(log_sink())
    desk = IncidentDesk(None, lambda: _notifications(spec.loaded))  # opened below
    bus.subscribe(desk)
    if not spec.reload() and spec.exception is not None:
        raise spec.exception  # no last good spec to fall back on at start-up
    assert spec.loaded is not None
    coordination = spec.loaded.fleet.reconciler.coordination
    name = controller_name(options.controller, "watch")
    with bounded_client() as client:
        leadership = leadership_for(coordination, name, report)
        desk.open(incidents_for(coordination, journal, leadership.fence, name))
        loop = WatchLoop(
            spec, journal, client, bus, report, progress, sweep=desk.sweep, leadership=leadership
        )
        forge = ForgeDesk(
            lambda: spec.source, journal.path, report, lambda: loop.leading, lambda: spec.memory
        )
        loop.on_applied = forge.applied
        servers = _servers(options, loop, journal, forge, report)

        def beating_report(message: str) -> None:
            loop.beat()
            report(message)

        loop.report = beating_report
        _handle_signals(loop)
        watcher = threading.Thread(target=loop.watch_file, name="watchfiles", daemon=True)
        watcher.start()
        start_watchdog(loop, stall_limit(spec.loaded))
        settings = spec.loaded.fleet.reconciler
        report(
            f"watching {options.state}: full pass every {settings.interval.total_seconds():g}s, "
            f"probes every {settings.probe_interval.total_seconds():g}s"
        )
        outbox = functools.partial(incidents_for, coordination, owner=name)
        desk.queued = (queued := threading.Event()).set  # the sender wakes for new pages
        idle = OUTBOX_IDLE_S if isinstance(coordination, EtcdCoordination) else BUSY_S
        with sending(
            lambda: _notifications(spec.loaded), journal.path, report, outbox, queued, idle
        ):
            try:
                code = loop.run(max_passes=options.max_passes, max_seconds=options.max_seconds)
            finally:
                leadership.close()  # a clean exit hands leadership over at once
                for server in servers:
                    server.should_exit = True
                forge.close()
        watcher.join(timeout=3)
    report("stopped")
    return code


def _handle_signals(loop: WatchLoop) -> None:
    signal.signal(signal.SIGTERM, lambda *_: loop.request_stop())
    signal.signal(signal.SIGINT, lambda *_: loop.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: loop.request_reload())


def _notifications(loaded: LoadedFleet | None) -> Notifications | None:
    return loaded.written.notifications if loaded is not None else None


def loop_hook(loop: WatchLoop, desk: ForgeDesk | None = None) -> Hook:
    """Gitea's webhook for `watch` (reconciler.forge.webhook): a signed push makes the
    loop fetch now; a signed `pull_request` queues its review on the forge desk."""
    return gitea_hook(
        lambda: loop.spec.source, loop.request_reload, desk.review if desk is not None else None
    )


def _servers(
    options: DaemonOptions, loop: WatchLoop, journal: Journal, desk: ForgeDesk, report: Report
) -> list[uvicorn.Server]:
    servers = []
    if options.http:
        servers.append(_dashboard(options.http, options, loop, journal, desk, report))
    if options.hooks:
        hooks_app = make_hooks_app(loop_hook(loop, desk))
        servers.append(serve_in_background(hooks_app, options.hooks, "hooks"))
        report(f"Gitea's webhook on http://{options.hooks}/hooks/gitea")
    return servers


def _dashboard(
    address: str,
    options: DaemonOptions,
    loop: WatchLoop,
    journal: Journal,
    desk: ForgeDesk,
    report: Report,
) -> uvicorn.Server:
    """`--http ADDR`: the dashboard, /metrics, /healthz and /readyz."""
    registry = CollectorRegistry()
    loaded = loop.spec.loaded
    loop.measure = PassMetrics(registry, largest_rto(loaded)).observe
    limit = stall_limit(loaded)
    hook = None if options.hooks else loop_hook(loop, desk)  # --hooks: on its own listener
    app = make_app(
        journal.path,
        options.state,
        lambda: loop.spec.loaded,
        registry,
        hook,
        lambda: shares(loop.leadership, loop.leading),
        lambda: readiness(loop, limit),
        loop.share,
    )
    server = serve_in_background(app, address)
    report(f"dashboard on http://{address}/ (/metrics, /healthz, /readyz)")
    if not is_loopback(address):
        report(
            f"warning: --http {address} is reachable from other machines, and the page has "
            "no authentication: anyone who reaches it sees the fleet's addresses, the state "
            "file's path and the plans; serve it on 127.0.0.1 behind an authenticating proxy"
        )
    return server
