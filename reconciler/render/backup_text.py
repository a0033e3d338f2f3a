"""Text for `reconcile backup`: snapshot tables and the restore plan."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from backups.restic_repo import Snapshot
from reconciler.hosts.observation import BackupState, FleetState
from reconciler.store.ledger import Entry, Ledger
from reconciler.untrusted.text import shown
from state.load import LoadedFleet
from state.render_backup import pins_repository_host
from state.repository import resolve_repository
from state.spec.backups import BackupPolicy


def snapshots_json(
    loaded: LoadedFleet,
    rows: dict[str, list[Snapshot]],
    verdicts: dict[str, dict[str, str]] | None = None,
    copy: str | None = None,
) -> list[dict[str, Any]]:
    """`backup list -o json`: one object per policy, its snapshots oldest first, each
    with the ledger's verdict (None when the journal could not be read)."""
    now = datetime.now(UTC)
    out = []
    for name, snapshots in rows.items():
        policy = loaded.fleet.backups[name]
        rpo = policy.rpo if copy is None else policy.copies[copy].rpo
        newest = snapshots[-1] if snapshots else None
        out.append(
            {
                "policy": name,
                "copy": copy,
                "rpo_seconds": rpo.total_seconds(),
                "rpo_breached": newest is None or now - newest.time > rpo,
                "snapshots": [
                    {
                        "id": snap.id,
                        "time": snap.time.astimezone(UTC).isoformat(),
                        "host": snap.host,
                        "paths": list(snap.paths),
                        "tags": list(snap.tags),
                        "provenance": (
                            None if verdicts is None else verdicts[name].get(snap.id, "unrecorded")
                        ),
                    }
                    for snap in snapshots
                ],
            }
        )
    return out


def render_snapshots(
    loaded: LoadedFleet,
    rows: dict[str, list[Snapshot]],
    verdicts: dict[str, dict[str, str]] | None = None,
    copy: str | None = None,
) -> str:
    """One line per snapshot; PROVENANCE is the ledger's verdict (`recorded`: restorable,
    `forged`, or `unrecorded`: never restored), when the journal could be read. With
    `copy`, the rows are that copy's, against its RPO."""
    now = datetime.now(UTC)
    out = [
        f"{'POLICY':<14} {'SNAPSHOT':<9} {'TIME (UTC)':<20} {'AGE':>8}  HOST      RPO       "
        "PROVENANCE"
    ]
    for name, snapshots in rows.items():
        policy = loaded.fleet.backups[name]
        rpo = policy.rpo if copy is None else policy.copies[copy].rpo
        if not snapshots:
            out.append(f"{name:<14} {'-':<9} {'-':<20} {'-':>8}  -         no snapshot yet")
        for snap in snapshots:
            age = now - snap.time
            mark = "ok" if snap is not snapshots[-1] or age <= rpo else "BREACHED"
            verdict = "-" if verdicts is None else verdicts[name].get(snap.id, "unrecorded")
            out.append(
                f"{name:<14} {snap.short_id:<9} "
                f"{snap.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} "
                f"{int(age.total_seconds() // 60):>7}m  {shown(snap.host):<9} {mark:<9} {verdict}"
            )
    return "\n".join(out) + "\n"


def restore_plan(
    name: str,
    snap: Snapshot,
    host: str,
    path: str,
    copy: str | None = None,
    asked: str | None = None,
) -> str:
    """What `backup restore` is about to do; a copy it fell back to (not `asked` for:
    the repository could not be listed) is said."""
    where = f" from copy {copy}" if copy else ""
    if copy and asked is None:
        where += " (the repository cannot be listed: its newest recorded copy)"
    return (
        f"Restore plan:\n  ~ restore snapshot {snap.short_id} of backup {name}{where} "
        f"({snap.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, recorded from {shown(snap.host)})\n"
        f"    into {host}:{path}; files there with the same names are overwritten\n"
    )


def standing(
    loaded: LoadedFleet,
    name: str,
    entries: list[Entry],
    now: float,
    copies: Mapping[str, list[Entry]] | None = None,
    state: BackupState | None = None,
) -> list[str]:
    """Where a policy stands, for `reconcile status` and the plan: its repository's
    confinement and credential, what the ledger recorded and found forged, what a rebuild
    restores, and each copy (`copies`: its recorded entries by name). With the pass's
    observation of the repository (`state`), only recorded snapshots it still lists
    count, and a lost repository says so."""
    policy = loaded.fleet.backups[name]
    recorded = [e for e in entries if e.verdict == "recorded"]
    forged = len(entries) - len(recorded)
    lost = ""
    if state is not None and state.error:
        lost = (
            "the repository is not initialised: its recorded snapshots are gone"
            if state.missing_repository
            else "the repository cannot be read now"
        )
    elif state is not None and state.listed:
        there = {c.id for c in state.claims}
        recorded = [e for e in recorded if e.snapshot_id in there]
    last_copied = {
        copy: max(found, key=lambda e: e.snapshot_time)
        for copy, found in (copies or {}).items()
        if found
    }
    kept, rebuild = _kept_and_rebuild(policy, recorded, lost, last_copied, now)
    tail = f"; {forged} forged (never restored)" if forged else ""
    lines = [f"  repository: {_where(loaded, name)}", f"  snapshots: {kept}{tail}; {rebuild}"]
    for copy, copied in sorted((copies or {}).items()):
        lines.append(_copy_line(policy, copy, copied, last_copied.get(copy), now))
    return lines


def _where(loaded: LoadedFleet, name: str) -> str:
    """The repository's confinement and whose credential reaches it."""
    policy = loaded.fleet.backups[name]
    target = resolve_repository(loaded.fleet, policy)
    if pins_repository_host(policy, target):
        return (
            f"append-only at {target.sftp_host}:{target.path} (rclone serve restic, forced "
            f"command); credential: key backup-{name}, held by {policy.host} only"
        )
    if target.on_fleet:
        return f"on {policy.host} itself: not confined (the host can delete it)"
    return f"off the fleet ({target.url}): confined only by that service's own rules"


def _kept_and_rebuild(
    policy: BackupPolicy,
    recorded: list[Entry],
    lost: str,
    last_copied: dict[str, Entry],
    now: float,
) -> tuple[str, str]:
    """What the repository holds, and what a rebuild of a blank host would restore."""
    if lost:
        spare = max(last_copied.items(), key=lambda pair: pair[1].snapshot_time, default=None)
        rebuild = (
            f"a blank host is rebuilt from copy {spare[0]} ({spare[1].short_id})"
            if spare and policy.restore != "never"
            else "a blank host is held (or started fresh with --fresh-data)"
        )
        return lost, rebuild
    if not recorded:
        return "none recorded", "nothing to rebuild from"
    newest = recorded[-1]
    age = int((now - newest.snapshot_time) // 60)
    rebuild = (
        "a blank host starts without it (restore: never)"
        if policy.restore == "never"
        else f"a blank host is rebuilt from {newest.short_id}"
    )
    return f"{len(recorded)} recorded, newest {newest.short_id} ({age}m ago)", rebuild


def _copy_line(
    policy: BackupPolicy, copy: str, copied: list[Entry], last: Entry | None, now: float
) -> str:
    spec = policy.copies[copy]
    held = (
        f"{len(copied)} recorded, newest {last.short_id} "
        f"({int((now - last.snapshot_time) // 60)}m old)"
        if last
        else "nothing copied yet"
    )
    return (
        f"  copy {copy}: {spec.repository}, filled by the controller only (its password "
        f"is on no host); {held} (RPO {_minutes(spec.rpo.total_seconds())})"
    )


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m"


def policy_standing(
    loaded: LoadedFleet, ledger: Ledger, name: str, now: float, state: BackupState | None
) -> list[str]:
    """`standing` of one policy, from the ledger: its entries and each copy's."""
    copies = {c: ledger.recorded(loaded.fleet, name, c) for c in loaded.fleet.backups[name].copies}
    return standing(loaded, name, ledger.entries(loaded.fleet, name), now, copies, state)


def standings(loaded: LoadedFleet, ledger: Ledger, now: float, observed: FleetState) -> str:
    """Where every backup policy stands, after a text plan (empty with no policy)."""
    if not loaded.fleet.backups:
        return ""
    lines = ["", "Backups (where each policy stands; the ledger as of this run):"]
    for name, policy in sorted(loaded.fleet.backups.items()):
        lines.append(f"backup {name} on {policy.host}")
        lines.extend(policy_standing(loaded, ledger, name, now, observed.backups.get(name)))
    return "\n".join(lines) + "\n"
