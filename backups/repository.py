"""The repository factory: a backup policy's restic repository, and its copies, as the
controller reaches them.

Every room of the reconciler that reads or writes a repository opens it here, so they
all reach it the same way (the holding host's key and known_hosts, the password from
its reference)."""

from __future__ import annotations

from backups.restic_repo import ResticRepo, sftp_command
from state.repository import controller_url, copy_url, resolve_repository
from state.secrets import resolve_secret
from state.spec.fleet import Fleet


def open_repository(fleet: Fleet, name: str, password: str | None = None) -> ResticRepo:
    """The policy's repository as the controller reaches it, opened with its password (or
    the one `password` refers to: a key rotation's old one). Raises SecretUnavailable."""
    policy = fleet.backups[name]
    target = resolve_repository(fleet, policy)
    sftp = sftp_command(fleet.hosts[target.sftp_host]) if target.sftp_host else None
    secret = resolve_secret(password or policy.password)
    return ResticRepo(controller_url(fleet, target), secret, sftp)


def open_store(fleet: Fleet, name: str, copy: str | None = None) -> ResticRepo:
    """The policy's repository, or its copy `copy` when given."""
    return open_repository(fleet, name) if copy is None else open_copy(fleet, name, copy)


def open_copy(fleet: Fleet, name: str, copy: str) -> ResticRepo:
    """Copy `copy` of policy `name` as the controller reaches it (only the controller
    does: no host holds its password). Raises SecretUnavailable."""
    spec = fleet.backups[name].copies[copy]
    url, sftp_host = copy_url(fleet, spec.repository)
    sftp = sftp_command(fleet.hosts[sftp_host]) if sftp_host else None
    return ResticRepo(url, resolve_secret(spec.password), sftp)
