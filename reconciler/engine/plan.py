"""Order changes into a plan: `make_plan(loaded, observed, changes) -> Plan`. Pure.

Within a host, actions follow the apply order (install, files, unit, run, health,
models); hosts follow the state file. The JSON form is a stable, documented
document for CI and review bots (see README, "Plan JSON").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.engine.changes import Change, Phase
from reconciler.hosts.observation import FleetState
from state.load import LoadedFleet

PLAN_FORMAT_VERSION = 1
BACKUP_ALERTS = frozenset(
    {"backup_now", "repo_missing", "repo_host_key_unknown", "data_missing", "copy_now"}
)


@dataclass(frozen=True)
class HostPlan:
    name: str
    address: str
    reachable: bool
    actions: tuple[Change, ...]


@dataclass(frozen=True)
class Summary:
    create: int = 0
    update: int = 0
    delete: int = 0
    unreachable: int = 0
    unhealthy: int = 0
    backups_due: int = 0

    @property
    def pending(self) -> bool:
        return any(
            (
                self.create,
                self.update,
                self.delete,
                self.unreachable,
                self.unhealthy,
                self.backups_due,
            )
        )


@dataclass(frozen=True)
class Plan:
    state_file: str
    state_sha256: str
    hosts: tuple[HostPlan, ...]
    summary: Summary = field(default_factory=Summary)

    @property
    def actions(self) -> tuple[Change, ...]:
        return tuple(a for h in self.hosts for a in h.actions)


def sort_key(change: Change) -> tuple[int, str, str]:
    return (int(change.phase), change.service or "", change.subject)


def make_plan(loaded: LoadedFleet, observed: FleetState, changes: list[Change]) -> Plan:
    """Group `changes` by host in state-file order and order each host's actions."""
    hosts = []
    for name, host in loaded.fleet.hosts.items():
        state = observed.hosts.get(name)
        actions = tuple(sorted((c for c in changes if c.host == name), key=sort_key))
        hosts.append(HostPlan(name, host.address, bool(state and state.reachable), actions))
    return Plan(loaded.label, loaded.sha256, tuple(hosts), summarize(changes))


def summarize(changes: list[Change]) -> Summary:
    def count(action: str) -> int:
        return sum(1 for c in changes if c.action == action)

    return Summary(
        create=count("create"),
        update=count("update"),
        delete=count("delete"),
        unreachable=sum(1 for c in changes if c.kind == "unreachable"),
        unhealthy=sum(
            1
            for c in changes
            if c.action == "alert" and c.kind not in {"unreachable", *BACKUP_ALERTS}
        ),
        backups_due=sum(1 for c in changes if c.kind in BACKUP_ALERTS),
    )


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as a JSON-ready dict; `format_version` changes only on breaking changes."""
    s = plan.summary
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "state_file": plan.state_file,
        "state_sha256": plan.state_sha256,
        "pending": s.pending,
        "summary": {
            "create": s.create,
            "update": s.update,
            "delete": s.delete,
            "unreachable": s.unreachable,
            "unhealthy": s.unhealthy,
            "backups_due": s.backups_due,
        },
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "reachable": h.reachable,
                "actions": [
                    {
                        "action": a.action,
                        "kind": a.kind,
                        "service": a.service,
                        "phase": Phase(a.phase).name.lower(),
                        "subject": a.subject,
                        "reason": a.reason,
                        "diff": a.diff,
                    }
                    for a in h.actions
                ],
            }
            for h in plan.hosts
        ],
    }


def parse_target(target: str) -> tuple[str, str | None]:
    """'HOST' or 'HOST/SERVICE' -> (host, service or None)."""
    host, _, service = target.partition("/")
    return host, service or None


def filter_plan(plan: Plan, targets: list[str]) -> Plan:
    """Keep only actions on the targeted hosts (and services); no targets keeps everything."""
    if not targets:
        return plan
    wanted = [parse_target(t) for t in targets]

    def keep(change: Change) -> bool:
        return any(
            change.host == h and (s is None or change.service in (s, None)) for h, s in wanted
        )

    hosts = tuple(
        HostPlan(h.name, h.address, h.reachable, tuple(a for a in h.actions if keep(a)))
        for h in plan.hosts
        if any(h.name == t for t, _ in wanted)
    )
    kept = [a for h in hosts for a in h.actions]
    return Plan(plan.state_file, plan.state_sha256, hosts, summarize(kept))


def exclude_from_plan(plan: Plan, keys: set[tuple[str, str | None]]) -> Plan:
    """Drop actions of (host, service) keys, e.g. services waiting out a backoff.

    Removals are never held back: a service that leaves the spec leaves its backoff."""
    if not keys:
        return plan
    hosts = tuple(
        HostPlan(
            h.name,
            h.address,
            h.reachable,
            tuple(a for a in h.actions if (a.host, a.service) not in keys or a.action == "delete"),
        )
        for h in plan.hosts
    )
    kept = [a for h in hosts for a in h.actions]
    return Plan(plan.state_file, plan.state_sha256, hosts, summarize(kept))


def pure_starts(plan: Plan) -> dict[str, list[str]]:
    """Per host, the services whose only drift is a stopped unit: one `start` of a unit
    that exists, nothing else to deploy for them (their models, applied after the
    deploys, may be pending: a stopped Ollama cannot list them). These are healed by
    `systemctl start` alone (the fast path), not by a full deploy cycle."""
    by_service: dict[tuple[str, str], list[Change]] = {}
    for action in plan.actions:
        if action.service is not None and action.phase != Phase.MODELS:
            by_service.setdefault((action.host, action.service), []).append(action)
    starts: dict[str, list[str]] = {}
    for (host, service), actions in by_service.items():
        if all(a.kind == "start" and a.action == "update" for a in actions):
            starts.setdefault(host, []).append(service)
    return starts
