"""Ollama models: pull or delete each planned model through the Ollama API."""

from __future__ import annotations

import httpx

from deploys.ollama import ModelError, delete_model, pull_model
from reconciler.apply.context import ProgressReport, Report
from reconciler.engine.changes import Change
from reconciler.hosts.probes import list_models
from state.load import LoadedFleet


def apply_models(
    loaded: LoadedFleet,
    changes: list[Change],
    client: httpx.Client,
    report: Report,
    progress: ProgressReport,
) -> list[tuple[Change, str | None]]:
    """Pull or delete each planned model; return each change with its error, or None."""
    results: list[tuple[Change, str | None]] = []
    for change in changes:
        assert change.service is not None
        model_set = next(m for m in loaded.fleet.models if m.service == change.service)
        endpoint = model_set.endpoint.format(address=loaded.fleet.hosts[change.host].address)
        model = change.subject.removeprefix("model ")
        if change.kind == "model_pull" and model in list_models(endpoint).present:
            report(f"{change.host}: {model} already present")  # planned while the service was down
            results.append((change, None))
            continue
        try:
            if change.kind == "model_pull":

                def on_progress(done: int, total: int, _status: str, m: str = model) -> None:
                    progress(m, done, total)

                pull_model(endpoint, model, on_progress)
            else:
                delete_model(endpoint, model)
        except ModelError as exc:
            report(f"{change.host}: FAILED {exc}")
            results.append((change, str(exc)))
            continue
        report(f"{change.host}: {change.kind.removeprefix('model_')} {model} done")
        results.append((change, None))
    return results
