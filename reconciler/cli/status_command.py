"""`reconcile status [STATE]` and `reconcile history`: what the fleet is, and what runs
did to it."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reconciler.cli import exit_codes
from reconciler.cli.incidents_command import incident_lines
from reconciler.cli.terminal import report
from reconciler.coordination.etcd_incidents import incidents_for
from reconciler.coordination.etcd_memory import memory_for, shared_memory
from reconciler.coordination.fleet_view import catch_up
from reconciler.coordination.leader import LeaderView, who_leads
from reconciler.engine.failover_detection import Verdict
from reconciler.engine.plan import plan_to_json
from reconciler.flows.drill import last_dr_drill, steps_of
from reconciler.flows.failover_outlook import outlook
from reconciler.flows.plan import Planned, plan_for
from reconciler.forge.holds import fleet_holds, holds_line
from reconciler.forge.source import desired_state
from reconciler.hosts.client import WorkerProcess
from reconciler.render.drill_text import drill_table
from reconciler.render.failover_text import failover_json, render_failover
from reconciler.render.status_text import (
    leader_lines,
    loop_lines,
    render_history,
    render_status,
    service_rows,
)
from reconciler.store.failover_state import FailoverState
from reconciler.store.journal import EventRecord, Journal
from reconciler.store.memory import LocalMemory, MemoryUnavailable
from reconciler.store.suspension import Suspended, Suspension
from reconciler.untrusted.http import bounded_client
from state.errors import SpecError
from state.load import LoadedFleet
from state.shards import shard_map
from state.spec.controller import EtcdCoordination


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0, or 3 when a host could not be observed (its rows say `unreachable`)."""
    worker: WorkerProcess = args.ssh_worker  # started first (reconciler.cli.main)
    journal = Journal(args.journal)
    try:
        loaded = desired_state(args.state, args.journal, shared_memory)
    except SpecError:
        # The loop keeps the last good spec; show its state, then the file's errors.
        local = Suspension(LocalMemory(journal)).get()  # no spec: no coordination known
        print("\n".join(loop_lines(journal, Path(args.state), local)))
        raise
    if caught := catch_up(loaded, journal):  # a follower shows the fleet's, not its own
        report(caught)
    with bounded_client() as client:  # the ledger read as a dry run reads it, never written
        result = plan_for(loaded, journal, client, worker, "read")
        loaded = result.loaded
        failover = outlook(loaded, journal, client, result.observed)
    coordination = loaded.fleet.reconciler.coordination
    try:
        opened = [i for i in incidents_for(coordination, journal).recent() if i["status"] == "open"]
        memory = memory_for(coordination, journal)
        suspended, unavailable = Suspension(memory).get(), None
        etcd = isinstance(coordination, EtcdCoordination)
        holds = fleet_holds(memory) if etcd and loaded.fleet.source else None
    except MemoryUnavailable as exc:  # etcd away: unknown, which is not "none"
        opened, suspended, unavailable, holds = [], None, str(exc), None
    facts = StatusFacts(
        args.state,
        loaded,
        result,
        journal,
        failover,
        last_dr_drill(journal),
        who_leads(coordination) if isinstance(coordination, EtcdCoordination) else None,
        opened,
        suspended,
        unavailable,
        holds,
    )
    if args.output == "json":
        print(json.dumps(status_document(facts), indent=2, default=str))
    else:
        _print_text(facts)
    unobserved = result.plan.summary.unreachable > 0
    return exit_codes.HOSTS_UNOBSERVED if unobserved else exit_codes.OK


@dataclass(frozen=True)
class StatusFacts:
    """What `status` reports, gathered once: printed as text or as JSON."""

    state: str
    loaded: LoadedFleet
    result: Planned
    journal: Journal
    failover: tuple[FailoverState, Verdict] | None
    drilled: EventRecord | None
    leaders: LeaderView | None
    open_incidents: list[dict[str, Any]]
    suspended: Suspended | None
    memory_unavailable: str | None = None  # then the two above are unknown
    source_holds: dict[str, str] | None = None  # with etcd: the fleet's commit in force, pin


def status_document(facts: StatusFacts) -> dict[str, Any]:
    """`status -o json` (reconciler/cli/schemas/status.schema.json)."""
    written, failover = facts.loaded.written.failover, facts.failover
    leaders, drilled = facts.leaders, facts.drilled
    return {
        "state_file": facts.state,
        "services": service_rows(
            facts.loaded, facts.result.observed, facts.result.plan, facts.journal
        ),
        "plan": plan_to_json(facts.result.plan),
        "failover": (
            failover_json(written, *failover) if failover and written is not None else None
        ),
        "last_dr_drill": [s.as_json() for s in steps_of(drilled)] if drilled else None,
        "loop": loop_lines(facts.journal, Path(facts.state), facts.suspended),
        "suspended": _suspension(facts.suspended),
        "open_incidents": facts.open_incidents,
        "memory_unavailable": facts.memory_unavailable,
        "source_holds": facts.source_holds,
        "coordination": leader_lines(leaders, time.time()) if leaders is not None else None,
    }


def _print_text(facts: StatusFacts) -> None:
    loaded, result, journal = facts.loaded, facts.result, facts.journal
    status = render_status(
        loaded, result.observed, result.plan, journal, Path(facts.state), facts.suspended
    )
    print(status, end="")
    written = loaded.written.failover
    if facts.failover is not None and written is not None:
        print("\n" + render_failover(written, *facts.failover), end="")
    if (drilled := facts.drilled) is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(drilled.at))
        print(f"\nlast DR drill, {when}:\n" + drill_table(steps_of(drilled)), end="")
    coordination = loaded.fleet.reconciler.coordination
    if facts.leaders is not None and isinstance(coordination, EtcdCoordination):
        shards = shard_map(loaded.written, coordination.shards)
        print("\n" + "\n".join(leader_lines(facts.leaders, time.time(), shards)))
    if facts.memory_unavailable is not None:
        print(f"\nsuspension and open incidents unknown: {facts.memory_unavailable}")
        return
    if facts.source_holds is not None:
        print("\n" + holds_line(facts.source_holds))
    print(f"\nopen incidents: {len(facts.open_incidents)}")
    print("".join(f"  {line}\n" for line in incident_lines(facts.open_incidents)), end="")


def _suspension(suspended: Suspended | None) -> dict[str, Any] | None:
    return None if suspended is None else {"since": suspended.since, "reason": suspended.reason}


def cmd_history(args: argparse.Namespace) -> int:
    runs = Journal(args.journal).runs(args.limit)
    if args.output == "json":
        print(json.dumps([asdict(run) for run in runs], indent=2))
    else:
        print(render_history(runs), end="")
    return exit_codes.OK
