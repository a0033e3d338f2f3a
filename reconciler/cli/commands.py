"""One thin function per `reconcile` command: load, call the engine, print its result.

Heavy modules (pydantic, httpx, the spec) are imported inside the commands, after the
SSH worker has been started, so the worker's own start-up runs in parallel with ours.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli.one_shot import drain_outbox, one_shot_bus
from reconciler.cli.terminal import confirm, report, show_progress
from reconciler.errors import UsageError
from reconciler.ssh.client import WarmWorker, WorkerProcess
from state.errors import SpecError

if TYPE_CHECKING:
    import httpx
    import uvicorn

    from reconciler.cli.forge_desk import ForgeDesk
    from reconciler.coordination.leader import Leadership
    from reconciler.daemon.loop import WatchLoop
    from reconciler.forge.webhook import Hook
    from reconciler.run.failover import Mover
    from reconciler.store.journal import Journal
    from state.load import LoadedFleet
    from state.models import Notifications

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


def cmd_reconcile(args: argparse.Namespace) -> int:
    # First: its start-up overlaps the imports below; kept for the whole run, so the
    # plan, the deploys, the health gate and verification share its SSH connections.
    worker = WarmWorker()
    try:
        from reconciler.forge.source import desired_state
        from state.load import load_fleet

        if args.review is not None and not args.dry_run:
            raise UsageError("--review BASE_STATE: expected with --dry-run (reviews apply nothing)")
        if args.dry_run:  # a review plans the file it is given, as written
            return _dry_run(args, load_fleet(args.state), worker)
        return _apply(args, desired_state(args.state, args.journal), worker)
    finally:
        worker.close(wait=False)  # about to exit: no need to watch it hang up


def _dry_run(args: argparse.Namespace, loaded: LoadedFleet, worker: WarmWorker) -> int:
    from reconciler.cli.dry_run import Authority, dry_run
    from state.load import load_fleet

    review = None
    if args.review is not None:  # the base is loaded first: a proposal never outranks it
        review = Authority(load_fleet(args.review))
    journal = readable_journal(args.journal, read_only=review is not None)
    planned = dry_run(loaded, journal, worker, args.target, args.fresh_data, review)
    if args.output == "json":
        print(json.dumps(planned.document, indent=2))
    else:
        print(planned.text, end="")
    return EXIT_PENDING if planned.plan.summary.pending else EXIT_OK


def _apply(args: argparse.Namespace, loaded: LoadedFleet, worker: WarmWorker) -> int:
    from reconciler.coordination.guard import leading
    from reconciler.store.journal import Journal

    journal = Journal(args.journal)
    # A person's apply never races the daemon: with etcd, it takes the leadership.
    with leading(loaded, journal, "cli", args.lock_timeout, report) as leadership:
        return _apply_leading(args, loaded, worker, journal, leadership)


def _apply_leading(
    args: argparse.Namespace,
    loaded: LoadedFleet,
    worker: WarmWorker,
    journal: Journal,
    leadership: Leadership,
) -> int:
    from reconciler.backup.provenance import announce_forged
    from reconciler.bounded_http import bounded_client
    from reconciler.cli.backup_text import standings
    from reconciler.cli.plan_text import render_apply, render_plan
    from reconciler.coordination.guard import apply_guard
    from reconciler.run.failover import placed, tick
    from reconciler.run.leases import leases_kept
    from reconciler.run.lifecycle import Runner, execute_plan
    from reconciler.run.once import plan_once
    from reconciler.store.confirmations import Confirmations
    from reconciler.store.ledger import Ledger
    from reconciler.store.lock import hosts_lock

    lock = hosts_lock(journal.path.parent, loaded.fleet, args.lock_timeout, report)
    finish_before_stopping()
    renewing = leases_kept(lambda: loaded, journal.path, renew_first=False)  # tick renews
    with lock, bounded_client() as client, renewing:
        if loaded.written.failover is not None:  # leases first: guarded units need one
            tick(_mover(loaded, journal, client))
            report(LEASE_NOTE)
        loaded = placed(loaded, journal)
        confirmations, ledger = Confirmations(journal), Ledger(journal)
        planned = plan_once(
            loaded,
            client,
            worker=worker,
            targets=args.target,
            confirmations=confirmations,
            ledger=ledger,
            fresh_data=args.fresh_data,
        )
        plan = planned.plan
        print(render_plan(plan), end="", flush=True)
        print(standings(loaded, ledger, time.time(), planned.observed), end="", flush=True)
        guard = apply_guard(leadership, loaded)
        runner = Runner(
            client,
            journal,
            report,
            show_progress,
            guard=guard,
            ssh=worker,
            fresh_data=args.fresh_data,
        )
        result = execute_plan(
            loaded, plan, runner, "apply", args.target, before_apply=lambda: confirm(args.yes)
        )
        if loaded.commit is not None:  # applied, or nothing to apply (a refusal raised)
            from reconciler.forge.source import commit_in_force

            commit_in_force(args.state, journal.path, loaded.commit)  # `verify: all` from here
        announce_forged(ledger, one_shot_bus(loaded, journal))
        if loaded.written.failover is not None or loaded.written.notifications is not None:
            drain_outbox(loaded, journal)
    if result is None:
        return EXIT_OK
    print(render_apply(result), end="")
    return EXIT_OK if result.converged else EXIT_ERROR


LEASE_NOTE = (
    "failover: leases renewed; `reconcile watch` keeps renewing them (without it the "
    "primary stops its failover services fence_after from now)"
)


def _mover(loaded: LoadedFleet, journal: Journal, client: httpx.Client) -> Mover:
    from reconciler.run.failover import Mover

    return Mover(loaded, journal, client, one_shot_bus(loaded, journal), report, show_progress)


def _notifications(loaded: LoadedFleet | None) -> Notifications | None:
    return loaded.written.notifications if loaded is not None else None


def readable_journal(journal_path: Path, read_only: bool = False) -> Journal | None:
    """The journal, when this user may open it: a reviewer's dry run works without it
    (it then lists every repository, and shows the failover state as home)."""
    import sqlite3

    from reconciler.store.journal import Journal

    try:
        return Journal(journal_path, read_only=read_only)
    except (OSError, sqlite3.Error):
        return None


def finish_before_stopping() -> None:
    """On SIGTERM, let the apply under way finish (hosts are mid-change) before exiting,
    as `reconcile watch` does; a second signal, or SIGKILL, still stops at once."""
    import signal

    def finish_first(signum: int, _frame: object) -> None:
        report("SIGTERM: finishing the apply under way first; send it again to stop now")
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, finish_first)


def cmd_status(args: argparse.Namespace) -> int:
    from reconciler.bounded_http import bounded_client

    worker = WorkerProcess()
    try:
        from reconciler.cli.drill_text import drill_table
        from reconciler.cli.failover_text import render_failover
        from reconciler.cli.incidents_command import incident_lines
        from reconciler.cli.status_text import leader_lines, loop_lines, render_status
        from reconciler.coordination.leader import who_leads
        from reconciler.forge.source import desired_state
        from reconciler.run.drill import last_dr_drill, steps_of
        from reconciler.run.failover import placed, review
        from reconciler.run.once import plan_once
        from reconciler.store.incidents import IncidentStore
        from reconciler.store.journal import Journal
        from reconciler.store.ledger import Ledger
        from state.models import EtcdCoordination
        from state.shards import shard_map

        journal = Journal(args.journal)
        try:
            loaded = desired_state(args.state, args.journal)
        except SpecError:
            # The loop keeps the last good spec; show its state, then the file's errors.
            print("\n".join(loop_lines(journal, Path(args.state))))
            raise
        loaded = placed(loaded, journal)
        with bounded_client() as client:  # the ledger read as a dry run reads it, never written
            ledger = Ledger(journal)
            result = plan_once(loaded, client, worker=worker, ledger=ledger, record=False)
            failover = review(loaded, journal, client, result.observed)
        status = render_status(loaded, result.observed, result.plan, journal, Path(args.state))
        print(status, end="")
        if failover is not None and loaded.written.failover is not None:
            print("\n" + render_failover(loaded.written.failover, *failover), end="")
        if (drilled := last_dr_drill(journal)) is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(drilled.at))
            print(f"\nlast DR drill, {when}:\n" + drill_table(steps_of(drilled)), end="")
        coordination = loaded.fleet.reconciler.coordination
        if isinstance(coordination, EtcdCoordination):
            shards = shard_map(loaded.written, coordination.shards)
            print("\n" + "\n".join(leader_lines(who_leads(coordination), time.time(), shards)))
        open_incidents = [i for i in IncidentStore(journal).recent() if i["status"] == "open"]
        print(f"\nopen incidents: {len(open_incidents)}")
        print("".join(f"  {line}\n" for line in incident_lines(open_incidents)), end="")
        return EXIT_OK
    finally:
        worker.close()


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from reconciler.bounded_http import bounded_client
    from reconciler.cli.forge_desk import ForgeDesk
    from reconciler.coordination.choice import leadership_for
    from reconciler.coordination.leader import controller_name
    from reconciler.daemon.loop import WatchLoop, start_watchdog
    from reconciler.daemon.spec_source import SpecSource
    from reconciler.events.bus import EventBus
    from reconciler.events.sinks import journal_sink, log_sink
    from reconciler.run.incident_desk import IncidentDesk
    from reconciler.run.outbox_sender import sending
    from reconciler.store.journal import Journal

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
        rtos = [s.rto.total_seconds() for s in spec.loaded.fleet.services.values()]
        start_watchdog(loop, stall_limit=2 * max(rtos, default=0) + 600)
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


def _gitea_hook(loop: WatchLoop, desk: ForgeDesk | None = None) -> Hook:
    """Gitea's webhook for `watch` (reconciler.forge.webhook): a signed push makes the
    loop fetch now; a signed `pull_request` queues its review on the forge desk."""
    from reconciler.forge.webhook import gitea_hook

    return gitea_hook(
        lambda: loop.spec.source, loop.request_reload, desk.review if desk is not None else None
    )


def _dashboard(
    args: argparse.Namespace, loop: WatchLoop, journal: Journal, desk: ForgeDesk
) -> uvicorn.Server:
    """`--http ADDR`: the dashboard and /metrics, served from a thread of the daemon."""
    from prometheus_client import CollectorRegistry

    from reconciler.web.app import is_loopback, make_app, serve_in_background
    from reconciler.web.metrics import PassMetrics

    registry = CollectorRegistry()
    loop.measure = PassMetrics(registry).observe
    hook = None if args.hooks else _gitea_hook(loop, desk)  # --hooks: on its own listener
    app = make_app(journal.path, Path(args.state), lambda: loop.spec.loaded, registry, hook)
    server = serve_in_background(app, args.http)
    report(f"dashboard on http://{args.http}/ (metrics at /metrics)")
    if not is_loopback(args.http):
        report(
            f"warning: --http {args.http} is reachable from other machines, and the page has "
            "no authentication: anyone who reaches it sees the fleet's addresses, the state "
            "file's path and the plans; serve it on 127.0.0.1 behind an authenticating proxy"
        )
    return server


def _hooks(address: str, hook: Hook) -> uvicorn.Server:
    """`--hooks ADDR`: Gitea's webhook alone on its own listener."""
    from reconciler.web.app import make_hooks_app, serve_in_background

    server = serve_in_background(make_hooks_app(hook), address)
    report(f"Gitea's webhook on http://{address}/hooks/gitea")
    return server


def cmd_history(args: argparse.Namespace) -> int:
    from reconciler.cli.status_text import render_history
    from reconciler.store.journal import Journal

    print(render_history(Journal(args.journal).runs(args.limit)), end="")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    import sys

    from reconciler.observe.witness import witness_warning
    from state.load import load_fleet
    from state.pager_placement import pager_on_fleet
    from state.secrets import unresolved_secrets

    loaded = load_fleet(args.state)
    fleet = loaded.fleet
    for problem in unresolved_secrets(fleet, loaded.lines, str(loaded.file)):
        print(f"warning: {problem}", file=sys.stderr)
    if (witness := witness_warning(loaded.written)) is not None:
        print(f"warning: {witness}", file=sys.stderr)
    for problem in pager_on_fleet(fleet, loaded.lines, str(loaded.file)):
        print(f"warning: {problem}", file=sys.stderr)
    print(
        f"{args.state}: valid ({len(fleet.hosts)} hosts, {len(fleet.services)} services, "
        f"{len(fleet.backups)} backup policies)"
    )
    return EXIT_OK


def cmd_schema(_args: argparse.Namespace) -> int:
    from state.schema import fleet_schema

    print(json.dumps(fleet_schema(), indent=2))
    return EXIT_OK
