"""pyinfra CLI entry point: converge every service of the current host to the state file.

    FLEET_STATE=state/demo.yaml pyinfra deploys/inventory.py deploys/fleet.py

`reconcile` runs the same `deploys.service.service` deploy, but only for services whose
plan has changes, and adds the health gate, models (from the controller, with progress)
and verification around it. It never writes the host's record of what `reconcile`
manages (`deploys/record.py`), so it never makes `reconcile` forget what to remove.
"""

import os

from pyinfra import host  # type: ignore[attr-defined]

from deploys.ollama_models import ollama_models
from deploys.service import service
from state.load import load_fleet

loaded = load_fleet(os.environ.get("FLEET_STATE", "state/fleet.yaml"))
for service_name, spec in loaded.fleet.services.items():
    if spec.host == host.name:
        service(loaded, service_name)
for model_set in loaded.fleet.models:
    if loaded.fleet.services[model_set.service].host == host.name:
        ollama_models(model_set)  # Ollama listens on the host itself
