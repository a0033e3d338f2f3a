"""How pyinfra reaches a spec Host: the inventory data for its SSH connector.

One definition for the reconciler's SSH worker and for `deploys/inventory.py`, so
`reconcile` and the plain pyinfra CLI connect the same way.
"""

from __future__ import annotations

from typing import Any

from state.models import Host


def pyinfra_host_data(host: Host) -> dict[str, Any]:
    """pyinfra `ssh_*` host data for `host`; strict host keys when a known_hosts is named."""
    data: dict[str, Any] = {
        "ssh_hostname": host.address,
        "ssh_user": host.ssh_user,
        "ssh_port": host.ssh_port,
    }
    if host.ssh_key:
        data["ssh_key"] = host.ssh_key
    if host.ssh_known_hosts:
        data["ssh_known_hosts_file"] = host.ssh_known_hosts
        data["ssh_strict_host_key_checking"] = "yes"
    return data
