"""Text for `reconcile backup`: snapshot tables and the restore plan."""

from __future__ import annotations

from datetime import UTC, datetime

from backups.restic_repo import Snapshot
from reconciler.untrusted import shown
from state.load import LoadedFleet


def render_snapshots(
    loaded: LoadedFleet,
    rows: dict[str, list[Snapshot]],
    verdicts: dict[str, dict[str, str]] | None = None,
) -> str:
    """One line per snapshot; PROVENANCE is the ledger's verdict (`recorded`: restorable,
    `forged`, or `unrecorded`: never restored), when the journal could be read."""
    now = datetime.now(UTC)
    out = [
        f"{'POLICY':<14} {'SNAPSHOT':<9} {'TIME (UTC)':<20} {'AGE':>8}  HOST      RPO       "
        "PROVENANCE"
    ]
    for name, snapshots in rows.items():
        rpo = loaded.fleet.backups[name].rpo
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


def restore_plan(name: str, snap: Snapshot, host: str, path: str) -> str:
    return (
        f"Restore plan:\n  ~ restore snapshot {snap.short_id} of backup {name} "
        f"({snap.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, recorded from {shown(snap.host)})\n"
        f"    into {host}:{path}; files there with the same names are overwritten\n"
    )
