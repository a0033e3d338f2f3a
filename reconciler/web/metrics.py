"""`/metrics`: Prometheus exposition with controller-runtime's naming.

Pass counts and durations are observed in-process by the loop (`PassMetrics`); the
rest is read from the journal at scrape time (`JournalCollector`), so a scrape always
shows what the journal holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from reconciler.store.journal import Journal
from reconciler.web.snapshot import take
from state.load import LoadedFleet

PREFIX = "fleet_reconciler"


class PassMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            f"{PREFIX}_reconcile",
            "Reconcile passes by kind (full, heal, probe) and result.",
            ["kind", "result"],
            registry=registry,
        )
        self.seconds = Histogram(
            f"{PREFIX}_reconcile_time_seconds",
            "Duration of reconcile passes by kind.",
            ["kind"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )

    def observe(self, kind: str, seconds: float, result: str) -> None:
        self.total.labels(kind, result).inc()
        self.seconds.labels(kind).observe(seconds)


class JournalCollector(Collector):
    def __init__(
        self, journal_path: Path, state_file: Path, loaded: Callable[[], LoadedFleet | None]
    ) -> None:
        self.journal_path, self.state_file, self.loaded = journal_path, state_file, loaded

    def collect(self) -> Iterator[Metric]:
        journal = Journal(self.journal_path)
        try:
            snap = take(journal, self.state_file, self.loaded())
        finally:
            journal.close()
        healthy = GaugeMetricFamily(
            f"{PREFIX}_service_healthy",
            "1 if the service's health checks pass.",
            labels=["host", "service"],
        )
        drift = GaugeMetricFamily(
            f"{PREFIX}_drift",
            "1 if the service is out of sync with the spec.",
            labels=["host", "service"],
        )
        for row in snap.services:
            healthy.add_metric([row.host, row.name], 1.0 if row.health == "Healthy" else 0.0)
            drift.add_metric([row.host, row.name], 1.0 if row.sync == "OutOfSync" else 0.0)
        yield healthy
        yield drift
        incidents = GaugeMetricFamily(
            f"{PREFIX}_incidents_open", "Open incidents by severity.", labels=["severity"]
        )
        for severity in ("P0", "P1", "P2", "P3"):
            count = sum(
                1 for i in snap.incidents if i["status"] == "open" and i["severity"] == severity
            )
            incidents.add_metric([severity], float(count))
        yield incidents
        if snap.source:
            spec = GaugeMetricFamily(
                f"{PREFIX}_spec_commit_info",
                "1 for the git source's commit in force (`source:`).",
                labels=["source", "commit"],
            )
            spec.add_metric([snap.source, snap.spec_commit or ""], 1.0)
            yield spec
        yield GaugeMetricFamily(
            f"{PREFIX}_notifications_unsent",
            "Notifications in the outbox not yet accepted.",
            value=float(snap.unsent),
        )
        drill = GaugeMetricFamily(
            f"{PREFIX}_drill_measured_seconds",
            "The last DR drill's measured times, by step and subject.",
            labels=["step", "subject", "verdict"],
        )
        for step in snap.drill:
            if step.get("measured_s") is not None:
                drill.add_metric(
                    [step["kind"], step["subject"], step["verdict"]], float(step["measured_s"])
                )
        yield drill
        age = GaugeMetricFamily(
            f"{PREFIX}_backup_age_seconds",
            "Age of the newest snapshot the repository confirmed, by policy.",
            labels=["policy"],
        )
        rpo = GaugeMetricFamily(
            f"{PREFIX}_backup_rpo_seconds",
            "The policy's recovery point objective.",
            labels=["policy"],
        )
        copy_age = GaugeMetricFamily(
            f"{PREFIX}_backup_copy_age_seconds",
            "Age of the newest snapshot the controller recorded in a policy's copy.",
            labels=["policy", "copy"],
        )
        copy_rpo = GaugeMetricFamily(
            f"{PREFIX}_backup_copy_rpo_seconds",
            "The copy's recovery point objective.",
            labels=["policy", "copy"],
        )
        for backup in snap.backups:
            labels = [backup.policy] if backup.copy is None else [backup.policy, backup.copy]
            if backup.age is not None:
                (age if backup.copy is None else copy_age).add_metric(labels, backup.age)
            (rpo if backup.copy is None else copy_rpo).add_metric(labels, backup.rpo)
        yield age
        yield rpo
        yield copy_age
        yield copy_rpo
        if snap.active:
            yield GaugeMetricFamily(
                f"{PREFIX}_failover_epoch", "The failover epoch.", value=float(snap.epoch)
            )
            active = GaugeMetricFamily(
                f"{PREFIX}_failover_active",
                "1 on the host running the failover services.",
                labels=["host"],
            )
            active.add_metric([snap.active], 1.0)
            yield active
