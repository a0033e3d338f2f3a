"""What backups need from the controller's secrets: passwords, each policy's own key to
its repository host, and the digest each env file should have.

Secrets are resolved here and handed to the SSH worker in its request (a pipe to a
child process); they are never printed, journaled or put in a plan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reconciler.apply.deploys import BackupSecrets
from reconciler.engine.diff_backups import BackupInputs
from reconciler.hosts.protocol import BackupPolicyWork, Work
from reconciler.repositories.fleet_key import ensure_policy_key, legacy_public_key
from state.render_backup import pins_repository_host, render_env
from state.repository import resolve_repository
from state.secrets import SecretUnavailable, resolve_secret
from state.spec.fleet import Fleet
from state.ssh import known_host_lines


def backup_secrets(
    fleet: Fleet, work: Work, key_dir: Path
) -> tuple[BackupSecrets | None, dict[str, str]]:
    """Passwords of the policies in `work`, and the keys of every policy whose repository
    is on another fleet host (a repository host authorizes all of its policies' keys at
    once); failures by host."""
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
            passwords[name] = resolve_secret(fleet.backups[name].password).reveal()
        except SecretUnavailable as exc:
            failed[host] = f"backup {name}: {exc}"
    known_hosts = {
        name: lines
        for _, name in names
        if (lines := repository_known_hosts(fleet, name)) is not None
    }
    keys = {
        name: ensure_policy_key(key_dir, name)
        for name, policy in fleet.backups.items()
        if pins_repository_host(policy, resolve_repository(fleet, policy))
    }
    return BackupSecrets(passwords, keys, known_hosts, legacy_public_key(key_dir)), failed


def backup_inputs(fleet: Fleet) -> dict[str, BackupInputs]:
    """Per policy: the sha256 its env file should have (None when its secret is
    unavailable) and the repository host's known_hosts lines to pin (None when the
    controller does not know that host's key, or the policy needs none)."""
    inputs: dict[str, BackupInputs] = {}
    for name, policy in fleet.backups.items():
        target = resolve_repository(fleet, policy)
        digest = None
        try:
            content = render_env(policy, target, resolve_secret(policy.password).reveal())
            digest = hashlib.sha256(content.encode()).hexdigest()
        except SecretUnavailable:
            pass
        inputs[name] = BackupInputs(digest, repository_known_hosts(fleet, name))
    return inputs


def repository_known_hosts(fleet: Fleet, name: str) -> str | None:
    """The known_hosts lines of the policy's repository host, when it must be pinned."""
    policy = fleet.backups[name]
    target = resolve_repository(fleet, policy)
    if not pins_repository_host(policy, target) or target.sftp_host is None:
        return None
    return known_host_lines(fleet.hosts[target.sftp_host])
