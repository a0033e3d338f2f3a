"""Rebuilding a blank host's data from its backups, before its services start.

The plan says `+ restore POLICY from snapshot ID` when every data path of a policy is
missing on its host and the policy has a recorded snapshot (reconciler.engine.
diff_backups). The apply runs these first: each newest recorded snapshot is restored
and verified (restic, `integrity_check`, `git bundle verify`) and put back at its paths
(reconciler.repositories.in_place). When the policy's repository fails, the newest snapshot
recorded in a copy is restored instead (the plan says so when it saw the repository
fail). A host whose rebuild fails gets nothing else in that run: its services never
start on empty data. The restored snapshot is held from retention until a newer one
passes a drill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from backups.repository import open_copy
from backups.restic_repo import ResticRepo, Snapshot
from reconciler.apply.context import Report
from reconciler.engine.plan import Plan
from reconciler.repositories.in_place import Restored, restore_in_place
from reconciler.repositories.operations import BackupFailed
from reconciler.repositories.restorable import newest_copies
from reconciler.store.ledger import Entry, Ledger
from state.layout import backup_policy_of
from state.load import LoadedFleet
from state.secrets import SecretUnavailable

Record = Callable[[str, str | None, str, str, str], None]
Source = tuple[str, Entry, Callable[[], ResticRepo | None]]
"""Where a rebuild may restore from: a label, the recorded entry, and how to open it."""


def rebuild_data(
    loaded: LoadedFleet, plan: Plan, ledger: Ledger, report: Report, record: Record
) -> dict[str, str]:
    """Restore every policy the plan rebuilds; failures by host."""
    failed: dict[str, str] = {}
    for action in plan.actions:
        name = backup_policy_of(action.service)
        if action.kind != "data_restore" or name is None or action.host in failed:
            continue
        try:
            restored, where, held = _restore_first(loaded, name, action.host, ledger, report)
        except BackupFailed as exc:
            failed[action.host] = (
                f"backup {name}: rebuild failed: {exc}; nothing else is done on "
                f"{action.host} in this run, so its services do not start without their data "
                "(--fresh-data starts them without it)"
            )
            continue
        detail = (
            f"snapshot {restored.snapshot.short_id}{where}: {restored.files} file(s) in "
            f"{restored.seconds:.1f}s"
        )
        report(f"{action.host}: restored {name} from {detail}")
        record(action.host, action.service, "restore", "ok", detail)
        why = f"restored by the rebuild of {action.host}"  # a copy's, through its original
        ledger.hold(loaded.fleet, name, held, why, time.time())
    return failed


def rebuild_sources(loaded: LoadedFleet, name: str, ledger: Ledger) -> list[Source]:
    """The repository's newest recorded snapshot, then each copy's, newest first."""
    sources: list[Source] = []
    recorded = ledger.recorded(loaded.fleet, name)
    if recorded:
        sources.append(("", recorded[-1], lambda: None))
    for copy, newest in newest_copies(loaded, ledger, name).items():
        sources.append((f" in copy {copy}", newest, _opener(loaded, name, copy)))
    return sources


def _opener(loaded: LoadedFleet, name: str, copy: str) -> Callable[[], ResticRepo | None]:
    return lambda: open_copy(loaded.fleet, name, copy)


def _restore_first(
    loaded: LoadedFleet, name: str, host: str, ledger: Ledger, report: Report
) -> tuple[Restored, str, str]:
    """Restore from the first source that works: the restore, where it came from, and
    the recorded snapshot that retention holds for it."""
    sources = rebuild_sources(loaded, name, ledger)
    if not sources:
        raise BackupFailed("no recorded snapshot")
    errors = []
    for where, entry, opener in sources:
        # The plan's observation listed the repository just now; a snapshot gone since
        # then fails restic's restore, which says so.
        taken = datetime.fromtimestamp(entry.snapshot_time, UTC)
        snapshot = Snapshot(entry.snapshot_id, taken, entry.host, (), ())
        try:
            restored = restore_in_place(loaded, name, snapshot, host, report, opener())
            return restored, where, entry.copy_of or entry.snapshot_id
        except (BackupFailed, SecretUnavailable) as exc:
            errors.append(f"{where.strip() or 'repository'}: {exc}")
            report(f"backup {name}: restore{where or ' from the repository'} failed: {exc}")
    raise BackupFailed("; ".join(errors))
