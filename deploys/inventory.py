"""A pyinfra inventory built from a state file, for running our deploys with the pyinfra CLI.

FLEET_STATE=state/demo.yaml pyinfra deploys/inventory.py deploys/fleet.py
"""

from __future__ import annotations

import os

from state.load import load_fleet
from state.ssh import pyinfra_host_data

_loaded = load_fleet(os.environ.get("FLEET_STATE", "state/fleet.yaml"))


hosts = [(name, pyinfra_host_data(host)) for name, host in _loaded.fleet.hosts.items()]
