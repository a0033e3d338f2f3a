"""Diff of backup policies: host-side files and timer, and the RPO of the newest snapshot. Pure.

The env file holds the repository password, so it is compared by digest only
(`env_digests`, computed by the caller from the resolved secret) and never diffed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from reconciler.engine.changes import Action, Change, ChangeKind, Phase
from reconciler.engine.textdiff import unified_diff
from reconciler.hosts.observation import BackupState, FileState, HostState
from state.layout import (
    backup_path,
    backup_policy_of,
    backup_service_id,
    backup_unit,
    unit_path,
)
from state.load import LoadedFleet
from state.placement import is_guarded
from state.render_backup import render_script, render_service, render_timer
from state.repository import RepositoryTarget, resolve_repository


def env_digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class RestoreSource:
    """The newest recorded snapshot of a policy (reconciler.repositories.restorable), in its
    repository or, when that cannot be read, in its copy `copy`."""

    snapshot_id: str
    taken: datetime
    copy: str | None = None


@dataclass(frozen=True)
class BackupInputs:
    """What the diff of a policy needs from the controller, computed by the caller so that
    the diff stays pure: the env file's digest (from the resolved password), the
    repository host's known_hosts lines (from the controller's own known_hosts), the
    snapshot a rebuild would restore, whether this run starts blank data fresh
    (`--fresh-data`), and how fresh each copy is. None when unavailable."""

    env_digest: str | None = None
    repository_known_hosts: str | None = None
    restore_from: RestoreSource | None = None
    fresh_data: bool = False
    copies_taken: Mapping[str, datetime | None] | None = None
    """When the newest snapshot recorded in each copy was taken (None: nothing yet); the
    whole None when the caller has no ledger (the copies are then not planned)."""


def diff_backup(
    loaded: LoadedFleet,
    name: str,
    host: HostState,
    state: BackupState | None,
    now: datetime | None,
    inputs: BackupInputs,
) -> list[Change]:
    """Changes for one policy whose host is reachable."""
    policy = loaded.fleet.backups[name]
    target = resolve_repository(loaded.fleet, policy)
    key = backup_service_id(name)
    changes = [
        c
        for c in (
            _env(policy.host, key, host.files.get(backup_path(name, "env")), inputs.env_digest),
            *_pinned_host_key(policy.host, name, target, inputs.repository_known_hosts, host),
            *(_text(policy.host, key, *file, host) for file in _generated(loaded, name)),
        )
        if c is not None
    ]
    changes += _timer(policy.host, name, host, changes)
    missing = [p for p in policy.data_paths if host.present.get(p) is False]
    source = inputs.restore_from
    if missing and source is not None:  # a backup never runs over missing data
        gone = state is not None and state.missing_repository and source.copy is None
        changes.extend(_missing_data(loaded, name, missing, source, inputs.fresh_data, now, gone))
        blank = len(missing) == len(policy.data_paths)
        if not (blank and (policy.restore == "never" or inputs.fresh_data)):
            return changes
    # Nothing recorded (a first deployment), or a blank host started fresh: its services
    # create the data before the apply's backup runs (and the script refuses to back up
    # a missing path).
    changes.extend(_rpo(loaded, name, state, now))
    return [*changes, *_copies(loaded, name, inputs.copies_taken, now)]


def _generated(loaded: LoadedFleet, name: str) -> list[tuple[Phase, ChangeKind, str, str, str]]:
    """The files the controller renders for a policy: (phase, kind, path, content, mode)."""
    policy = loaded.fleet.backups[name]
    target = resolve_repository(loaded.fleet, policy)
    unit = backup_unit(name)
    script = render_script(name, policy, target)
    service = render_service(name, is_guarded(loaded.fleet, unit))
    return [
        (Phase.FILES, "backup_script", backup_path(name, "script"), script, "0700"),
        (Phase.UNIT, "backup_unit", unit_path(f"{unit}.service"), service, "0644"),
        (Phase.UNIT, "backup_unit", unit_path(f"{unit}.timer"), render_timer(name, policy), "0644"),
    ]


def _timer(host_name: str, name: str, host: HostState, changes: list[Change]) -> list[Change]:
    """The policy's timer enabled and running (created with its unit, when that is new)."""
    unit = backup_unit(name)
    timer = host.units.get(f"{unit}.timer")
    if timer is not None and timer.enabled == "enabled" and timer.active == "active":
        return []
    seen = f"{timer.enabled}, {timer.active}" if timer else "not found"
    created = any(c.kind == "backup_unit" and c.action == "create" for c in changes)
    action: Action = "create" if created else "update"
    subject, key = f"enable {unit}.timer", backup_service_id(name)
    return [Change(host_name, key, Phase.RUNTIME, "backup_timer", action, subject, f"timer {seen}")]


def copy_subject(copy: str, policy: str) -> str:
    """The subject of a `copy_now` change; `copy_named` reads the copy back from it."""
    return f"copy {copy} of backup {policy}"


def copy_named(subject: str) -> str:
    return subject.split()[1]


def _copies(
    loaded: LoadedFleet,
    name: str,
    taken: Mapping[str, datetime | None] | None,
    now: datetime | None,
) -> list[Change]:
    """A copy whose newest recorded snapshot is older than its RPO: copy now (the
    controller's `restic copy` of the recorded snapshots it lacks)."""
    policy = loaded.fleet.backups[name]
    if taken is None:
        return []
    out = []
    for copy, spec in policy.copies.items():
        newest = taken.get(copy)
        rpo = _short(spec.rpo.total_seconds())
        if newest is None:
            reason = f"nothing copied yet, RPO {rpo}"
        elif now is not None and (age := (now - newest).total_seconds()) > spec.rpo.total_seconds():
            reason = f"newest copy taken {_short(age)} ago, RPO {rpo}"
        else:
            continue
        out.append(
            Change(
                policy.host,
                backup_service_id(name),
                Phase.BACKUP,
                "copy_now",
                "alert",
                copy_subject(copy, name),
                f"{reason}; the controller copies the recorded snapshots to {spec.repository}",
            )
        )
    return out


def _missing_data(
    loaded: LoadedFleet,
    name: str,
    missing: list[str],
    source: RestoreSource,
    fresh_data: bool,
    now: datetime | None,
    repository_gone: bool = False,
) -> list[Change]:
    """A host whose policy data is gone while the policy has a recorded snapshot: every
    path (a blank host) is rebuilt from the newest before its services start; some paths
    are held for a person (restoring over data that is there is their call). Backups are
    held either way. When the repository is gone too (not initialised) and no copy holds
    the snapshot, the plan says that the apply holds the host, and how to go on."""
    policy = loaded.fleet.backups[name]
    key = backup_service_id(name)

    def change(kind: ChangeKind, action: Action, subject: str, reason: str) -> Change:
        return Change(policy.host, key, Phase.INSTALL, kind, action, subject, reason)

    held = "backups are held until it is there"
    if len(missing) < len(policy.data_paths):
        return [
            change(
                "data_missing",
                "alert",
                f"backup {name}",
                f"{', '.join(missing)} missing while the rest is there; {held} "
                "(`reconcile backup restore` puts it back on your word)",
            )
        ]
    if policy.restore == "never" or fresh_data:
        why = "restore: never" if policy.restore == "never" else "--fresh-data"
        return [
            change(
                "data_missing",
                "alert",
                f"backup {name}",
                f"every data path missing; {why}: its services start without it, and its "
                "backups resume once they have written it",
            )
        ]
    reason = _restore_reason(policy.host, source, now, repository_gone)
    return [change("data_restore", "create", f"restore {name}", reason)]


def _restore_reason(
    host: str, source: RestoreSource, now: datetime | None, repository_gone: bool
) -> str:
    age = f" (taken {_short((now - source.taken).total_seconds())} ago)" if now else ""
    where = f"copy {source.copy} " if source.copy else ""
    lost = ", the repository being unreadable" if source.copy else ""
    then = "restored and verified before the host's services start"
    if repository_gone:
        then = (
            "but the repository is not initialised and no copy holds a recorded snapshot: "
            f"the apply holds {host} (restore the repository, or start its services "
            "without the data: --fresh-data)"
        )
    return (
        f"from {where}snapshot {source.snapshot_id[:8]}{age}: every data path is "
        f"missing{lost}; {then}"
    )


def _pinned_host_key(
    host_name: str, name: str, target: RepositoryTarget, wanted: str | None, host: HostState
) -> list[Change | None]:
    """The repository host's key, pinned on the policy's host (no trust on first use)."""
    policy_pins = target.on_fleet and target.sftp_host != host_name
    if not policy_pins:
        return []
    key = backup_service_id(name)
    if wanted is None:
        reason = (
            f"the key of repository host {target.sftp_host} is not in the controller's "
            "known_hosts, so it cannot be pinned; add it there first"
        )
        subject = f"backup {name} repository host key"
        return [
            Change(host_name, key, Phase.FILES, "repo_host_key_unknown", "alert", subject, reason)
        ]
    path = backup_path(name, "known_hosts")
    return [_text(host_name, key, Phase.FILES, "backup_known_hosts", path, wanted, "0644", host)]


def _env(host: str, key: str, seen: FileState | None, wanted: str | None) -> Change | None:
    subject = f"file {backup_path(key.split(':', 1)[1], 'env')}"
    if seen is None:
        return Change(
            host,
            key,
            Phase.FILES,
            "backup_env",
            "create",
            subject,
            "missing (holds the repository password; content not shown)",
        )
    reasons = []
    if wanted is not None and seen.sha256 != wanted:
        reasons.append("content differs (secret, not shown)")
    if seen.mode != "0600":
        reasons.append(f"mode {seen.mode} → 0600")
    if not reasons:
        return None
    return Change(host, key, Phase.FILES, "backup_env", "update", subject, ", ".join(reasons))


def _text(
    host_name: str,
    key: str,
    phase: Phase,
    kind: ChangeKind,
    path: str,
    want: str,
    mode: str,
    host: HostState,
) -> Change | None:
    seen = host.files.get(path)
    subject = f"file {path}" if phase == Phase.FILES else f"unit {path.rsplit('/', 1)[-1]}"
    if seen is None:
        return Change(
            host_name, key, phase, kind, "create", subject, "missing", unified_diff("", want, path)
        )
    reasons, text = [], None
    if seen.sha256 != hashlib.sha256(want.encode()).hexdigest():
        reasons.append("content differs")
        text = unified_diff(seen.content or "", want, path)
    if seen.mode != mode:
        reasons.append(f"mode {seen.mode} → {mode}")
    if not reasons:
        return None
    return Change(host_name, key, phase, kind, "update", subject, ", ".join(reasons), text)


def _rpo(
    loaded: LoadedFleet, name: str, state: BackupState | None, now: datetime | None
) -> list[Change]:
    policy = loaded.fleet.backups[name]
    rpo = _short(policy.rpo.total_seconds())

    def due(kind: ChangeKind, reason: str) -> Change:
        return Change(
            policy.host,
            backup_service_id(name),
            Phase.BACKUP,
            kind,
            "alert",
            f"backup {name}",
            reason,
        )

    if state is None:
        return []
    if state.missing_repository and policy.init:
        init = Change(
            policy.host,
            backup_service_id(name),
            Phase.INSTALL,
            "repo_init",
            "create",
            f"repository {policy.repository}",
            "not initialised (init: true)",
        )
        return [init, due("backup_now", f"no snapshot yet, RPO {rpo}")]
    if state.missing_repository:
        return [
            due("repo_missing", "repository not initialised; set init: true or run restic init")
        ]
    if state.error is not None:
        return [due("backup_now", f"RPO at risk, repository unreadable: {state.error}")]
    if state.last_snapshot is None or now is None:
        return [due("backup_now", f"no snapshot yet, RPO {rpo}")]
    age = (now - state.last_snapshot).total_seconds()
    if age <= policy.rpo.total_seconds():
        return []
    return [due("backup_now", f"last snapshot {_short(age)} ago, RPO {rpo}")]


def _short(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{int(seconds)}s"


def one_init_per_repository(loaded: LoadedFleet, changes: list[Change]) -> list[Change]:
    """Policies that share a repository need it initialised once: one `repo_init`, the
    first policy's, naming every policy that waits for it."""
    fleet, inits = loaded.fleet, dict[str, Change]()
    users: dict[str, list[str]] = {}
    for change in changes:
        policy = backup_policy_of(change.service) if change.kind == "repo_init" else None
        if policy is not None:
            url = resolve_repository(fleet, fleet.backups[policy]).url
            inits.setdefault(url, change)
            users.setdefault(url, []).append(policy)
    merged = {
        id(first): replace(first, reason=f"{first.reason}; for {', '.join(users[url])}")
        for url, first in inits.items()
    }
    return [merged.get(id(c), c) for c in changes if c.kind != "repo_init" or id(c) in merged]
