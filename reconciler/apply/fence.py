"""Writing leases on hosts (state.fence): renew on the active host, revoke elsewhere."""

from __future__ import annotations

from reconciler.ssh.remote import Remote, run_remote
from state.fence import lease_command
from state.models import Host

LEASE_TIMEOUT_S = 8.0


def set_lease(host: Host, epoch: int, seconds: int) -> Remote:
    """Give `host` a lease of `seconds` in `epoch` (0 seconds revokes it). The host
    refuses an epoch lower than the highest it has seen (exit 3)."""
    return run_remote(host, lease_command(epoch, seconds), LEASE_TIMEOUT_S)


def stop_units(host: Host, units: list[str], timeout: float = 120.0) -> Remote:
    """Stop `units` on `host` and wait for them to be down."""
    return run_remote(host, "systemctl stop -- " + " ".join(units), timeout)
