"""Diff of Ollama models: missing ones are pulled, unlisted ones pruned only if asked. Pure."""

from __future__ import annotations

from reconciler.engine.changes import Change, Phase
from reconciler.hosts.observation import FleetState
from state.load import LoadedFleet


def diff_models(
    loaded: LoadedFleet, service: str, observed: FleetState, service_pending: bool
) -> list[Change]:
    model_set = next(m for m in loaded.fleet.models if m.service == service)
    host = loaded.fleet.services[service].host
    state = observed.models.get(service)
    if state is None or state.error is not None:
        if service_pending:  # the service is being (re)created; models follow it
            return [
                Change(
                    host,
                    service,
                    Phase.MODELS,
                    "model_pull",
                    "create",
                    f"model {m}",
                    "service not ready yet",
                )
                for m in model_set.present
            ]
        error = state.error if state else "not observed"
        return [
            Change(
                host,
                service,
                Phase.MODELS,
                "models_unavailable",
                "alert",
                f"models on {service}",
                f"cannot list models: {error}",
            )
        ]
    changes = [
        Change(host, service, Phase.MODELS, "model_pull", "create", f"model {m}", "not present")
        for m in model_set.present
        if m not in state.present
    ]
    if model_set.prune:
        changes += [
            Change(
                host,
                service,
                Phase.MODELS,
                "model_delete",
                "delete",
                f"model {m}",
                "not in spec (prune: true)",
            )
            for m in state.present
            if m not in model_set.present
        ]
    return changes
