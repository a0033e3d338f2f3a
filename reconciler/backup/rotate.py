"""`reconcile backup rotate-key POLICY`: after a suspected compromise of a policy's host,
replace the SSH key that host uses to reach its repository, and revoke the old one.

The old key pair is deleted on the controller, a new one is made, and one deploy puts
the new private key on the policy's host and rewrites the repository host's block of
confined entries (each policy's key, forced to `rclone serve restic --append-only` on its
own path), so the old key's entry is gone. Nothing in the repository changes: every
snapshot stays. A rotation cut short is finished by the next apply, which deploys the
new key wherever the old one still is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.apply.context import Report
from reconciler.backup.fleet_key import ensure_policy_key, fingerprint, retire_policy_key
from reconciler.backup.operations import BackupFailed, converge_policy, require_policy
from reconciler.errors import PermanentError
from state.load import LoadedFleet
from state.render_backup import pins_repository_host
from state.repository import resolve_repository


class NothingToRotate(PermanentError, ValueError):
    """The policy's repository is not on another fleet host: no key of ours reaches it."""


@dataclass(frozen=True)
class Rotation:
    policy: str
    old: str | None  # fingerprints
    new: str


def rotate_key(loaded: LoadedFleet, name: str, key_dir: Path, report: Report) -> Rotation:
    """Replace and revoke policy `name`'s key; raises BackupFailed if a deploy fails."""
    require_policy(loaded, name)
    policy = loaded.fleet.backups[name]
    target = resolve_repository(loaded.fleet, policy)
    if not pins_repository_host(policy, target):
        raise NothingToRotate(
            f"backup {name}: its repository {policy.repository} is not on another fleet "
            "host, so no fleet-reconciler key reaches it; rotate that service's own credential"
        )
    old = retire_policy_key(key_dir, name)
    new = ensure_policy_key(key_dir, name)
    report(f"backup {name}: new key made; deploying it to {policy.host}, revoking the old one")
    try:
        converge_policy(loaded, name, key_dir, report)
    except BackupFailed as exc:
        raise BackupFailed(
            f"{exc}; the rotation is not finished: the old key stays authorized until "
            "`reconcile backup rotate-key` or an apply deploys the new one"
        ) from None
    return Rotation(name, fingerprint(old) if old else None, fingerprint(new.public))
