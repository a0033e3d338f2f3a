"""Reading the daemon's /metrics as Prometheus would, for tests and benchmarks."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def probe_passes(address: str) -> float:
    """How many probe passes `reconcile watch --http ADDRESS` has made so far."""
    text = httpx.get(f"http://{address}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fleet_reconciler_reconcile_total" and sample.labels["kind"] == "probe"
    )


def pass_seconds(address: str, kind: str) -> tuple[float, float]:
    """(total seconds, count) of the passes of `kind` (full, heal, probe) so far."""
    text = httpx.get(f"http://{address}/metrics", timeout=5).text
    found = {"_sum": 0.0, "_count": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removeprefix("fleet_reconciler_reconcile_time_seconds")
            if name in found and sample.labels.get("kind") == kind:
                found[name] += sample.value
    return found["_sum"], found["_count"]
