"""What backups need from the controller's secrets: passwords, the fleet's backup key,
and the digest each env file should have.

Secrets are resolved here and handed to the SSH worker in its request (a pipe to a
child process); they are never printed, journaled or put in a plan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reconciler.apply.deploys import BackupSecrets
from reconciler.backup.fleet_key import ensure_fleet_backup_key
from reconciler.ssh.protocol import BackupPolicyWork, Work
from state.models import Fleet
from state.render_backup import render_env
from state.repository import resolve_repository
from state.secrets import SecretUnavailable, resolve_secret


def backup_secrets(
    fleet: Fleet, work: Work, key_dir: Path
) -> tuple[BackupSecrets | None, dict[str, str]]:
    """Passwords of the policies in `work` and the fleet's backup key; failures by host."""
    names = {
        (host, item.name)
        for host, items in work.items()
        for item in items
        if isinstance(item, BackupPolicyWork)
    }
    if not names:
        return None, {}
    passwords, failed = {}, {}
    for host, name in sorted(names):
        try:
            passwords[name] = resolve_secret(fleet.backups[name].password)
        except SecretUnavailable as exc:
            failed[host] = f"backup {name}: {exc}"
    return BackupSecrets(passwords, ensure_fleet_backup_key(key_dir)), failed


def env_digests(fleet: Fleet) -> dict[str, str | None]:
    """sha256 each policy's env file should have (None when its secret is unavailable)."""
    digests: dict[str, str | None] = {}
    for name, policy in fleet.backups.items():
        try:
            password = resolve_secret(policy.password)
        except SecretUnavailable:
            digests[name] = None
            continue
        content = render_env(resolve_repository(fleet, policy), password)
        digests[name] = hashlib.sha256(content.encode()).hexdigest()
    return digests
