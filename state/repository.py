"""Where a backup policy's restic repository is, as seen from its host and from the controller.

`sftp:USER@NAME:/path` where NAME is a fleet host is resolved to that host's address.
A plain path is a repository on the policy's own host; the controller reaches it over
sftp too. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from state.spec.backups import BackupPolicy
from state.spec.fleet import Fleet
from state.spec.hosts import Host
from state.url_types import SFTP_URL


@dataclass(frozen=True)
class RepositoryTarget:
    """`url` is what restic on the backing-up host uses; `sftp_host` holds the repository
    when it is on a fleet host (reached over sftp), else None (rest:, s3:, a foreign host)."""

    url: str
    sftp_host: str | None
    sftp_user: str
    path: str | None

    @property
    def on_fleet(self) -> bool:
        return self.sftp_host is not None


def repository_host_name(repository: str) -> str | None:
    """The HOST of `sftp:[USER@]HOST:/path`, else None."""
    match = SFTP_URL.fullmatch(repository)
    return match["host"] if match else None


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def resolve_repository(fleet: Fleet, policy: BackupPolicy) -> RepositoryTarget:
    repo = policy.repository
    if repo.startswith("/"):
        return RepositoryTarget(repo, policy.host, "root", repo)
    match = SFTP_URL.fullmatch(repo)
    if match and match["host"] in fleet.hosts:
        host: Host = fleet.hosts[match["host"]]
        user = match["user"] or "root"
        if match["host"] == policy.host:  # on its own host (a policy moved by failover)
            return RepositoryTarget(match["path"], policy.host, user, match["path"])
        return RepositoryTarget(
            f"sftp:{user}@{host.address}:{match['path']}", match["host"], user, match["path"]
        )
    return RepositoryTarget(repo, None, "", None)


def controller_url(fleet: Fleet, target: RepositoryTarget) -> str:
    """The repository URL the controller uses: always sftp to the holding fleet host."""
    if target.sftp_host is None or target.path is None:
        return target.url
    address = fleet.hosts[target.sftp_host].address
    return f"sftp:{target.sftp_user}@{address}:{target.path}"


def copy_url(fleet: Fleet, repository: str) -> tuple[str, str | None]:
    """A copy's repository as the controller reaches it, and the fleet host it is on
    (reached over sftp with that host's key), else None. `local:/path` is the
    controller's own disk."""
    match = SFTP_URL.fullmatch(repository)
    if match and match["host"] in fleet.hosts:
        address = fleet.hosts[match["host"]].address
        return f"sftp:{match['user'] or 'root'}@{address}:{match['path']}", match["host"]
    return repository, None
