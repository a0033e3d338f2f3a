"""What failover changes on hosts: leases (state.fence), stopping the services at a
move's source, and the final backup there."""

from __future__ import annotations

import shlex

from reconciler.ssh.remote import Remote, run_remote
from state.fence import lease_command
from state.layout import backup_path, run_backup_command
from state.models import Host

LEASE_TIMEOUT_S = 8.0


def set_lease(host: Host, epoch: int, seconds: int) -> Remote:
    """Give `host` a lease of `seconds` in `epoch` (0 seconds revokes it). The host
    refuses an epoch lower than the highest it has seen (exit 3)."""
    return run_remote(host, lease_command(epoch, seconds), LEASE_TIMEOUT_S, connect_timeout=3)


def stop_units(host: Host, units: list[str], timeout: float = 120.0) -> Remote:
    """Stop `units` on `host` and wait for them to be down (none to stop: done)."""
    if not units:
        return Remote(True)
    return run_remote(host, "systemctl stop -- " + " ".join(map(shlex.quote, units)), timeout)


def final_backup(host: Host, policy: str, timeout: float) -> Remote:
    """Run `policy`'s backup unit on `host` and wait; stdout is its `.last` record
    (snapshot ID and time)."""
    command = f"{run_backup_command(policy)} && cat -- {shlex.quote(backup_path(policy, 'last'))}"
    return run_remote(host, command, timeout)
