"""The JSON Schema of the state file, generated from the models (`reconcile schema`)."""

from __future__ import annotations

from typing import Any

from state.models import Fleet

SCHEMA_ID = "https://fleet-reconciler.invalid/schema/fleet-v1.json"


def fleet_schema() -> dict[str, Any]:
    schema = Fleet.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
