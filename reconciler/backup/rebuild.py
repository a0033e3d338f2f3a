"""Rebuilding a blank host's data from its backups, before its services start.

The plan says `+ restore POLICY from snapshot ID` when every data path of a policy is
missing on its host and the policy has a recorded snapshot (reconciler.engine.
diff_backups). The apply runs these first: each newest recorded snapshot is restored
and verified (restic, `integrity_check`, `git bundle verify`) and put back at its paths
(reconciler.backup.in_place). A host whose rebuild fails gets nothing else in that run:
its services never start on empty data. The restored snapshot is held from retention
until a newer one passes a drill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from backups.restic_repo import Snapshot
from reconciler.apply.context import Report
from reconciler.backup.in_place import restore_in_place
from reconciler.backup.operations import BackupFailed
from reconciler.engine.plan import Plan
from reconciler.store.ledger import Ledger
from state.layout import backup_policy_of
from state.load import LoadedFleet

Record = Callable[[str, str | None, str, str, str], None]


def rebuild_data(
    loaded: LoadedFleet, plan: Plan, ledger: Ledger, report: Report, record: Record
) -> dict[str, str]:
    """Restore every policy the plan rebuilds; failures by host."""
    failed: dict[str, str] = {}
    for action in plan.actions:
        name = backup_policy_of(action.service)
        if action.kind != "data_restore" or name is None or action.host in failed:
            continue
        recorded = ledger.recorded(loaded.fleet, name)
        try:
            if not recorded:
                raise BackupFailed("no recorded snapshot")
            # The plan's observation listed the repository just now; a snapshot gone
            # since then fails restic's restore, which says so.
            newest = recorded[-1]
            snapshot = Snapshot(
                newest.snapshot_id,
                datetime.fromtimestamp(newest.snapshot_time, UTC),
                newest.host,
                (),
                (),
            )
            restored = restore_in_place(loaded, name, snapshot, action.host, report)
        except BackupFailed as exc:
            failed[action.host] = (
                f"backup {name}: rebuild failed: {exc}; nothing else is done on "
                f"{action.host} in this run, so its services do not start without their data"
            )
            continue
        detail = (
            f"snapshot {restored.snapshot.short_id}: {restored.files} file(s) in "
            f"{restored.seconds:.1f}s"
        )
        report(f"{action.host}: restored {name} from {detail}")
        record(action.host, action.service, "restore", "ok", detail)
        why = f"restored by the rebuild of {action.host}"
        ledger.hold(loaded.fleet, name, restored.snapshot.id, why, time.time())
    return failed
