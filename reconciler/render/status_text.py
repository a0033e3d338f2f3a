"""`reconcile status` and `reconcile history`: tables built from observation and the journal."""

from __future__ import annotations

import time
from pathlib import Path

from backups.restic_repo import restic_version
from reconciler.coordination.leader import LeaderView, ShardView
from reconciler.engine.plan import Plan
from reconciler.events.verification_events import DRILL_KINDS, last_event
from reconciler.hosts.observation import FleetState
from reconciler.render.backup_text import policy_standing
from reconciler.render.outcome_text import summary_line
from reconciler.store.journal import Journal, RunRecord
from reconciler.store.ledger import Ledger
from reconciler.store.suspension import Suspended
from state.load import LoadedFleet
from state.ssh import known_hosts_file


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def service_rows(
    loaded: LoadedFleet, observed: FleetState, plan: Plan, journal: Journal
) -> list[dict[str, str | None]]:
    """Per service: host, desired, observed, health, pending and the last change, as
    `status` shows them (a table, or JSON)."""
    rows: list[dict[str, str | None]] = []
    pending = {(a.host, a.service) for a in plan.actions}
    for name, service in loaded.fleet.services.items():
        host = observed.hosts.get(service.host)
        desired = None
        if service.unit is not None:
            desired = ("enabled" if service.unit.enabled else "disabled") + ",active"
        seen: str | None
        health: str | None
        if host is None or not host.reachable:
            seen, health = "unreachable", "?"
        else:
            unit = host.units.get(name)
            seen = f"{unit.enabled},{unit.active}" if unit else None
            results = observed.health.get(name, ())
            sick = [r.check for r in results if not r.healthy]
            health = "unhealthy: " + ", ".join(sick) if sick else ("healthy" if results else None)
        change = journal.last_change(service.host, name)
        rows.append(
            {
                "host": service.host,
                "service": name,
                "desired": desired,
                "observed": seen,
                "health": health,
                "pending": "yes" if (service.host, name) in pending else "no",
                "last_change_at": _when(change[0]) if change else None,
                "last_change": change[1].split("| ")[-1] if change else None,
            }
        )
    return rows


def render_status(
    loaded: LoadedFleet,
    observed: FleetState,
    plan: Plan,
    journal: Journal,
    state_file: Path,
    suspended: Suspended | None,
) -> str:
    """Per host and service: desired versus observed, health, pending, last change; last run.
    `state_file` is the one `watch` was given (with a git source, not the commit's file)."""
    rows = [["HOST", "SERVICE", "DESIRED", "OBSERVED", "HEALTH", "PENDING", "LAST CHANGE"]]
    for row in service_rows(loaded, observed, plan, journal):
        change = f"{row['last_change_at']} {row['last_change']}" if row["last_change"] else None
        cells = [row[k] for k in ("host", "service", "desired", "observed", "health", "pending")]
        rows.append([c or "-" for c in [*cells, change]])
    out = _table(rows)
    for model_set in loaded.fleet.models:
        state = observed.models.get(model_set.service)
        seen = (state.error or ", ".join(state.present)) if state else "-"

        out.append(
            f"models on {model_set.service}: want {', '.join(model_set.present)}; present {seen}"
        )
    out.extend(host_key_lines(loaded))
    out.extend(backup_lines(loaded, observed, journal))
    out.extend(loop_lines(journal, state_file, suspended))
    runs = journal.runs(1)
    if runs:
        run = runs[0]
        out.append(
            f"last run: {run.id} {run.outcome or 'running'} at {_when(run.started)}"
            + (f" ({run.error})" if run.error else "")
        )
    else:
        out.append("last run: none recorded")
    out.append(summary_line(plan.summary))
    return "\n".join(out) + "\n"


def host_key_lines(loaded: LoadedFleet) -> list[str]:
    """How each host's identity is checked: strictly, or trusted on first use."""
    lines = []
    for name, host in loaded.fleet.hosts.items():
        how = (
            "trusted on first use, then checked"
            if host.host_key_policy == "trust-on-first-use"
            else "checked strictly"
        )
        lines.append(f"host key of {name}: {how} against {known_hosts_file(host)}")
    return lines


def render_history(runs: list[RunRecord]) -> str:
    if not runs:
        return "No runs recorded.\n"
    rows = [["RUN", "STARTED", "SECONDS", "OUTCOME", "CHANGED", "COMMIT", "ERROR"]]
    for run in runs:
        seconds = f"{run.ended - run.started:.1f}" if run.ended else "-"
        commit = (run.git_commit or "-")[:10] + ("+dirty" if run.git_dirty else "")
        rows.append(
            [
                run.id,
                _when(run.started),
                seconds,
                run.outcome or "running",
                str(run.changes),
                commit,
                (run.error or "")[:60],
            ]
        )
    return "\n".join(_table(rows)) + "\n"


def loop_lines(journal: Journal, state_file: Path, suspended: Suspended | None) -> list[str]:
    """The watch loop's own health, as it last recorded it."""
    saved = journal.loop_state(str(state_file.resolve()))
    if saved is None:
        return ["loop: reconcile watch has not run against this state file", *_suspended(suspended)]
    updated, data = saved
    lines = [
        f"loop: pid {data.get('pid')}, {data.get('passes', 0)} passes, last pass "
        f"({data.get('last_kind') or '-'}) {_when(data.get('last_pass'))}, next full pass "
        f"{_when(data.get('next_full'))}, next probe {_when(data.get('next_probe'))}; "
        f"recorded {_when(updated)}"
    ]
    for key, backoff in (data.get("backoffs") or {}).items():
        lines.append(
            f"loop: backoff {key}: {backoff['failures']} failures, retry in {backoff['retry_in']}s"
        )
    if data.get("source"):
        commit = str(data.get("spec_commit") or "none yet")
        pinned = ""
        if data.get("pinned"):
            tip = str(data.get("branch_tip") or "?")[:12]
            pinned = f" (PINNED by `reconcile pin`; the branch is at {tip}; `reconcile unpin`)"
        lines.append(f"loop: spec in force: commit {commit[:12]} of {data['source']}{pinned}")
        if data.get("held"):
            held = str(data["held"])[:12]
            lines.append(
                f"loop: HELD: the branch is at {held}, which does not descend from the commit "
                f"in force; the fleet stays on {commit[:12]} until `reconcile accept {held}`"
            )
    lines.extend(_suspended(suspended))
    if data.get("spec_error"):
        lines.append("loop: state file REJECTED, last good spec in force:")
        lines.extend(f"  {line}" for line in str(data["spec_error"]).splitlines())
    return lines


def _suspended(suspended: Suspended | None) -> list[str]:
    if suspended is None:
        return []
    return [
        f"loop: applying SUSPENDED since {_when(suspended.since)} ({suspended.reason}): "
        "observing, probing, paging and failover go on; `reconcile resume`"
    ]


def backup_lines(loaded: LoadedFleet, observed: FleetState, journal: Journal) -> list[str]:
    """Per policy: the newest snapshot against the RPO, the last restore drill, and
    where it stands (confinement, the ledger, a rebuild)."""
    lines, ledger = [], Ledger(journal)
    if loaded.fleet.backups:
        lines.append(f"backups: restic {restic_version()} on the controller")
    for name, policy in loaded.fleet.backups.items():
        state = observed.backups.get(name)
        if state is None or state.error:
            seen = f"repository unreadable: {state.error}" if state else "not observed"
        elif state.last_snapshot is None or observed.observed_at is None:
            seen = "no snapshot yet"
        else:
            age = int((observed.observed_at - state.last_snapshot).total_seconds() // 60)
            seen = f"last snapshot {age}m ago, {state.snapshots} kept"
        rpo = int(policy.rpo.total_seconds() // 60)
        drill = last_event(journal, DRILL_KINDS, name)
        verdict = (
            (
                f"last drill {_when(drill.at)}: "
                f"{'passed' if drill.kind == 'drill_passed' else 'FAILED'} "
                f"in {drill.context.get('seconds', '?')}s"
            )
            if drill
            else "no drill yet"
        )
        lines.append(f"backup {name} on {policy.host}: {seen} (RPO {rpo}m); {verdict}")
        lines.extend(policy_standing(loaded, ledger, name, time.time(), state))
    return lines


def leader_lines(view: LeaderView, now: float, shards: dict[str, int] | None = None) -> list[str]:
    """`status` with etcd coordination: who leads, since when, the token, each controller;
    for a sharded fleet, each shard's leader and hosts (`shards`: each host's shard)."""
    if view.error:
        return [f"coordination: etcd unreachable, nobody applies: {view.error}"]
    if view.shards:
        lines = [f"coordination: etcd; {len(view.shards)} shards"]
        for shard in view.shards:
            hosts = sorted(h for h, k in (shards or {}).items() if k == shard.shard)
            lines.append(f"  {_shard_line(shard, hosts)}")
    elif view.holder is None:
        lines = ["coordination: etcd; no leader (nobody applies until one is elected)"]
    else:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(view.holder.since))
        head = (
            f"coordination: etcd; leader {view.holder.name} since {since}, "
            f"fencing token {view.holder.token}"
        )
        lines = [head]
    if view.spec_sha and not view.shards:
        lines.append(f"  spec in force (the leader's last pass): {view.spec_sha[:12]}")
    for name, last in sorted(view.controllers):
        seen = f"last pass {now - last:.0f}s ago" if last else "no pass yet"
        lines.append(f"  controller {name}: {seen}")
    return lines


def _shard_line(shard: ShardView, hosts: list[str]) -> str:
    on = f" ({', '.join(hosts)})" if hosts else " (no hosts)"
    if shard.holder is None:
        return f"shard {shard.shard}{on}: no leader (its hosts are not watched)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(shard.holder.since))
    spec = f", spec in force {shard.spec_sha[:12]}" if shard.spec_sha else ""
    return (
        f"shard {shard.shard}{on}: leader {shard.holder.name} since {since}, "
        f"fencing token {shard.holder.token}{spec}"
    )
