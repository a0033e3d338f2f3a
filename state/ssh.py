"""How the controller reaches a spec Host: pyinfra inventory data and the plain ssh command.

One definition for the reconciler's SSH worker, `deploys/inventory.py` and the restic
adapter, so every path connects the same way.
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


def ssh_argv(host: Host) -> list[str]:
    """The OpenSSH client command reaching `host` with its own key and known_hosts."""
    command = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", str(host.ssh_port)]
    if host.ssh_key:
        command += ["-i", host.ssh_key]
    if host.ssh_known_hosts:
        command += [
            "-o",
            f"UserKnownHostsFile={host.ssh_known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
        ]
    return [*command, f"{host.ssh_user}@{host.address}"]
