"""Ollama models as a pyinfra deploy, for the plain pyinfra CLI (`deploys/fleet.py`).

`reconcile` pulls models from the controller instead (`deploys/ollama.py`) to show the
streamed progress; this deploy asks the host's own Ollama with curl.
"""

from __future__ import annotations

import json
import shlex

from pyinfra import host  # type: ignore[attr-defined]
from pyinfra.api.facts import FactBase
from pyinfra.operations import server

from deploys.service import typed_deploy
from state.spec.services import ModelSet


class OllamaModels(FactBase[list[str]]):
    """Models an Ollama API lists, asked from the host itself with curl."""

    def command(self, endpoint: str) -> str:
        return f"curl -sf {shlex.quote(endpoint)}/api/tags"

    def process(self, output: list[str]) -> list[str]:
        try:
            return sorted(m["name"] for m in json.loads("\n".join(output)).get("models", []))
        except (ValueError, KeyError, TypeError, AttributeError):
            return []


@typed_deploy("Ollama models")
def ollama_models(model_set: ModelSet, endpoint: str = "http://127.0.0.1:11434") -> None:
    """The plain-pyinfra form of the models step: pull missing models, prune if asked.

    Runs curl on the host against its local Ollama; `reconcile` instead pulls from the
    controller so it can show the streamed progress.
    """
    present = host.get_fact(OllamaModels, endpoint=endpoint)
    for model in model_set.present:
        if model in present:
            host.noop(f"model {model} is present")
            continue
        body = shlex.quote(json.dumps({"model": model, "stream": False}))
        server.shell(
            name=f"pull {model}",
            commands=[f"curl -sf -X POST -d {body} {shlex.quote(endpoint)}/api/pull"],
        )
    for model in present:
        if model_set.prune and model not in model_set.present:
            body = shlex.quote(json.dumps({"model": model}))
            server.shell(
                name=f"delete {model}",
                commands=[f"curl -sf -X DELETE -d {body} {shlex.quote(endpoint)}/api/delete"],
            )
