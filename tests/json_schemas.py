"""Check a command's `-o json` document against its schema in reconciler/cli/schemas/
(for the unit and the integration tests alike)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[1] / "reconciler/cli/schemas"


def registry() -> Registry:
    """Every schema, by its file name and by its $id (status.schema.json refers to the plan's)."""
    found = [json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")]
    by_name = [(s["$id"].rsplit("/", 1)[-1], Resource.from_contents(s)) for s in found]
    by_id = [(s["$id"], Resource.from_contents(s)) for s in found]
    return Registry().with_resources([*by_name, *by_id])


def check(name: str, document: Any) -> None:
    """Raise jsonschema.ValidationError unless `document` is valid against `name`."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.validate(document, schema, registry=registry())
