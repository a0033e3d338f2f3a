"""`reconcile watch [STATE]`: the daemon, assembled: the spec source, the event bus and
its sinks, the incident desk, leadership, the loop, the forge desk, the dashboard and
the webhook listener, the watchdog, and the outbox sender."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from reconciler.bounded_http import bounded_client
from reconciler.cli.forge_desk import ForgeDesk
from reconciler.cli.terminal import report, show_progress
from reconciler.coordination.choice import leadership_for
from reconciler.coordination.leader import controller_name
from reconciler.coordination.sharded import shares
from reconciler.daemon.health import largest_rto, readiness, stall_limit, start_watchdog
from reconciler.daemon.loop import WatchLoop
from reconciler.daemon.spec_source import SpecSource
from reconciler.events.bus import EventBus
from reconciler.events.sinks import journal_sink, log_sink
from reconciler.forge.webhook import Hook, gitea_hook
from reconciler.run.incident_desk import IncidentDesk
from reconciler.run.outbox_sender import sending
from reconciler.store.journal import Journal
from reconciler.web.app import is_loopback, make_app, make_hooks_app, serve_in_background
from reconciler.web.metrics import PassMetrics
from state.load import LoadedFleet
from state.models import Notifications


def cmd_watch(args: argparse.Namespace) -> int:
    journal = Journal(args.journal)
    bus = EventBus()
    spec = SpecSource(Path(args.state).resolve(), bus, journal)  # status finds it by that
    bus.subscribe(journal_sink(journal))
    bus.subscribe(log_sink())
    desk = IncidentDesk(journal, lambda: _notifications(spec.loaded))
    bus.subscribe(desk)
    if not spec.reload() and spec.exception is not None:
        raise spec.exception  # no last good spec to fall back on at start-up
    assert spec.loaded is not None
    with bounded_client() as client:
        leadership = leadership_for(
            spec.loaded.fleet.reconciler.coordination,
            controller_name(args.controller, "watch"),
            report,
        )
        loop = WatchLoop(
            spec,
            journal,
            client,
            bus,
            report,
            show_progress,
            sweep=desk.sweep,
            leadership=leadership,
        )
        forge = ForgeDesk(lambda: spec.source, journal.path, report, lambda: loop.leading)
        loop.on_applied = forge.applied
        dashboard = _dashboard(args, loop, journal, forge) if args.http else None
        hooks = _hooks(args.hooks, _gitea_hook(loop, forge)) if args.hooks else None

        def beating_report(message: str) -> None:
            loop.beat()
            report(message)

        loop.report = beating_report
        signal.signal(signal.SIGTERM, lambda *_: loop.request_stop())
        signal.signal(signal.SIGINT, lambda *_: loop.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: loop.request_reload())
        watcher = threading.Thread(target=loop.watch_file, name="watchfiles", daemon=True)
        watcher.start()
        start_watchdog(loop, stall_limit(spec.loaded))
        settings = spec.loaded.fleet.reconciler
        report(
            f"watching {args.state}: full pass every {settings.interval.total_seconds():g}s, "
            f"probes every {settings.probe_interval.total_seconds():g}s"
        )
        with sending(lambda: _notifications(spec.loaded), journal.path, report):
            try:
                code = loop.run(max_passes=args.max_passes, max_seconds=args.max_seconds)
            finally:
                leadership.close()  # a clean exit hands leadership over at once
                for server in (dashboard, hooks):
                    if server is not None:
                        server.should_exit = True
                forge.close()
        watcher.join(timeout=3)
    report("stopped")
    return code


def _notifications(loaded: LoadedFleet | None) -> Notifications | None:
    return loaded.written.notifications if loaded is not None else None


def _gitea_hook(loop: WatchLoop, desk: ForgeDesk | None = None) -> Hook:
    """Gitea's webhook for `watch` (reconciler.forge.webhook): a signed push makes the
    loop fetch now; a signed `pull_request` queues its review on the forge desk."""

    return gitea_hook(
        lambda: loop.spec.source, loop.request_reload, desk.review if desk is not None else None
    )


def _dashboard(
    args: argparse.Namespace, loop: WatchLoop, journal: Journal, desk: ForgeDesk
) -> uvicorn.Server:
    """`--http ADDR`: the dashboard, /metrics, /healthz and /readyz, served from a thread
    of the daemon."""
    registry = CollectorRegistry()
    loaded = loop.spec.loaded
    loop.measure = PassMetrics(registry, largest_rto(loaded)).observe
    limit = stall_limit(loaded)
    hook = None if args.hooks else _gitea_hook(loop, desk)  # --hooks: on its own listener
    app = make_app(
        journal.path,
        Path(args.state),
        lambda: loop.spec.loaded,
        registry,
        hook,
        lambda: shares(loop.leadership, loop.leading),
        lambda: readiness(loop, limit),
        loop.share,
    )
    server = serve_in_background(app, args.http)
    report(f"dashboard on http://{args.http}/ (/metrics, /healthz, /readyz)")
    if not is_loopback(args.http):
        report(
            f"warning: --http {args.http} is reachable from other machines, and the page has "
            "no authentication: anyone who reaches it sees the fleet's addresses, the state "
            "file's path and the plans; serve it on 127.0.0.1 behind an authenticating proxy"
        )
    return server


def _hooks(address: str, hook: Hook) -> uvicorn.Server:
    """`--hooks ADDR`: Gitea's webhook alone on its own listener."""

    server = serve_in_background(make_hooks_app(hook), address)
    report(f"Gitea's webhook on http://{address}/hooks/gitea")
    return server
