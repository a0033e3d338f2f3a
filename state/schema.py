"""The JSON Schema of the state file, generated from the models (`reconcile schema`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from state.spec.fleet import Fleet
from state.types import format_fine_duration

SCHEMA_ID = "https://fleet-reconciler.invalid/schema/fleet-v1.json"


class SpecSchema(GenerateJsonSchema):
    """Defaults written as the state file writes them: a duration default is '60s' (what
    its pattern accepts), not pydantic's ISO 8601 'PT1M' (which the spec refuses)."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_fine_duration(dft)
        return super().encode_default(dft)


def fleet_schema() -> dict[str, Any]:
    schema = Fleet.model_json_schema(mode="validation", schema_generator=SpecSchema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
