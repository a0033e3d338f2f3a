"""A pyinfra inventory built from a state file, for running our deploys with the pyinfra CLI.

FLEET_STATE=state/demo.yaml pyinfra deploys/inventory.py deploys/fleet.py
"""

from __future__ import annotations

import os
from typing import Any

from state.load import load_fleet

_loaded = load_fleet(os.environ.get("FLEET_STATE", "state/fleet.yaml"))


def _data(name: str) -> dict[str, Any]:
    host = _loaded.fleet.hosts[name]
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


hosts = [(name, _data(name)) for name in _loaded.fleet.hosts]
