"""`reconcile backup rotate-key POLICY`: after a suspected compromise of a policy's host,
replace the credentials that host holds for its repository, and revoke the old ones.

The SSH key: the old key pair is deleted on the controller, a new one is made, and one
deploy puts the new private key on the policy's host and rewrites the repository host's
block of confined entries (each policy's key, forced to `rclone serve restic
--append-only` on its own path), so the old key's entry is gone.

The restic key, with `--old-password REF`: the state file's `password` already names the
new password, REF the one the host held. The repository gets a key for the new password
(added with the old), the same deploy gives the host the new password, and then the key
the old password opens is removed: the old password opens nothing. restic keys wrap one
master key, so no snapshot is rewritten and every snapshot stays.

A rotation cut short is finished by running it again (a key already added is found, not
added twice) or, for the SSH key, by the next apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backups.repository import open_repository
from backups.restic_repo import ResticError, WrongPassword
from reconciler.apply.context import Report
from reconciler.errors import PermanentError
from reconciler.repositories.fleet_key import ensure_policy_key, fingerprint, retire_policy_key
from reconciler.repositories.operations import BackupFailed, converge_policy, require_policy
from state.load import LoadedFleet
from state.render_backup import pins_repository_host
from state.repository import resolve_repository
from state.secrets import SecretUnavailable


class NothingToRotate(PermanentError, ValueError):
    """The policy's repository is not on another fleet host: no key of ours reaches it."""


@dataclass(frozen=True)
class Rotation:
    policy: str
    old: str | None  # fingerprints
    new: str
    restic_old: str | None = None  # restic key IDs, when the password was rotated too
    restic_new: str | None = None


def rotate_key(
    loaded: LoadedFleet,
    name: str,
    key_dir: Path,
    report: Report,
    old_password: str | None = None,
) -> Rotation:
    """Replace and revoke policy `name`'s SSH key, and its restic key when `old_password`
    (a secret reference) is given; raises BackupFailed if a step fails."""
    require_policy(loaded, name)
    policy = loaded.fleet.backups[name]
    target = resolve_repository(loaded.fleet, policy)
    if not pins_repository_host(policy, target):
        raise NothingToRotate(
            f"backup {name}: its repository {policy.repository} is not on another fleet "
            "host, so no fleet-reconciler key reaches it; rotate that service's own credential"
        )
    restic_old = restic_new = None
    if old_password is not None:
        restic_old, restic_new = _add_restic_key(loaded, name, old_password, report)
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
    if restic_old is not None and restic_old != restic_new:
        try:
            open_repository(loaded.fleet, name).remove_key(restic_old)
        except (ResticError, SecretUnavailable) as exc:
            raise BackupFailed(
                f"backup {name}: the host has the new password, but removing the old restic "
                f"key {restic_old} failed: {exc}; run the rotation again"
            ) from None
        report(f"backup {name}: restic key {restic_old} removed: the old password opens nothing")
    return Rotation(
        name, fingerprint(old) if old else None, fingerprint(new.public), restic_old, restic_new
    )


def _add_restic_key(
    loaded: LoadedFleet, name: str, old_password: str, report: Report
) -> tuple[str | None, str]:
    """A key for the state file's password, added with the old one (unless it is there
    already: a rotation run again); the old key's ID (None when the old password opens
    nothing any more) and the new key's."""
    try:
        new_repo = open_repository(loaded.fleet, name)
        old_repo = open_repository(loaded.fleet, name, old_password)
        try:
            old_id: str | None = old_repo.current_key()
        except WrongPassword:
            old_id = None
        try:
            new_id = new_repo.current_key()
        except WrongPassword:
            if old_id is None:
                raise BackupFailed(
                    f"backup {name}: neither the state file's password nor --old-password "
                    "opens the repository"
                ) from None
            old_repo.add_key(new_repo.password)
            new_id = new_repo.current_key()
            report(f"backup {name}: restic key {new_id} added for the state file's password")
    except (ResticError, SecretUnavailable) as exc:
        raise BackupFailed(f"backup {name}: adding the new restic key failed: {exc}") from None
    if old_id == new_id:
        raise BackupFailed(
            f"backup {name}: --old-password opens the same key as the state file's password: "
            "put the new password in the state file's reference first"
        )
    return old_id, new_id
