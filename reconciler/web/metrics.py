"""`/metrics`: Prometheus exposition with controller-runtime's naming, for alerting.

Pass counts and durations are observed in-process by the loop (`PassMetrics`); the
rest comes from the snapshot of the loop's last pass (`FleetCollector`, served from
memory: reconciler.web.snapshot.SnapshotCache). Every host and service of the spec has
a series from the first scrape (0 until a pass has seen it up or healthy), and every
backup policy and copy a last-snapshot timestamp (0 before the first), so an alert on
them fires on absence too. The alerts shipped in contrib/prometheus/ use these names;
a unit test checks that they exist.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from importlib import metadata

from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from reconciler.web.snapshot import Snapshot
from state.load import LoadedFleet

PREFIX = "fleet_reconciler"
BASE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def buckets_to(largest_rto: float) -> tuple[float, ...]:
    """The pass histogram's buckets: up to 2 min, then doubling until the largest RTO
    (a heal may wait up to its service's RTO in the health gate)."""
    buckets = list(BASE_BUCKETS)
    while buckets[-1] < largest_rto:
        buckets.append(min(buckets[-1] * 2, largest_rto))
    return tuple(buckets)


class PassMetrics:
    def __init__(self, registry: CollectorRegistry, largest_rto: float = 0.0) -> None:
        self.total = Counter(
            f"{PREFIX}_reconcile",
            "Reconcile passes by kind (full, heal, probe) and result (error: the pass "
            "failed or did not converge, as `reconcile history` records it).",
            ["kind", "result"],
            registry=registry,
        )
        self.seconds = Histogram(
            f"{PREFIX}_reconcile_time_seconds",
            "Duration of reconcile passes by kind.",
            ["kind"],
            buckets=buckets_to(largest_rto),
            registry=registry,
        )

    def observe(self, kind: str, seconds: float, result: str) -> None:
        self.total.labels(kind, result).inc()
        self.seconds.labels(kind).observe(seconds)


def register_process_metrics(registry: CollectorRegistry) -> None:
    """`process_*` (CPU, memory, open files) and `python_info`, as the default registry has."""
    registry.register(PROCESS_COLLECTOR)
    registry.register(PLATFORM_COLLECTOR)


class FleetCollector(Collector):
    """The fleet as the loop last saw it. `leading()` is this controller's leadership:
    {shard: leads} ("0" without shards); `share()` the hosts it reports host_up and
    service series for (its shards; none on a standby, whose last look is stale), so
    that with several controllers each host has one series, from its leader."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        loaded: Callable[[], LoadedFleet | None],
        leading: Callable[[], dict[str, bool]] | None = None,
        share: Callable[[], LoadedFleet | None] | None = None,
    ) -> None:
        self.snapshot, self.loaded, self.leading = snapshot, loaded, leading
        self.share = share  # the hosts this controller reports on (None: a standby, none)
        self.build = build_labels()

    def collect(self) -> Iterator[Metric]:
        snap, loaded = self.snapshot(), self.loaded()
        info = GaugeMetricFamily(
            f"{PREFIX}_build_info",
            "1, labelled with the versions this controller runs.",
            labels=list(self.build),
        )
        info.add_metric(list(self.build.values()), 1.0)
        yield info
        yield from self._loop(snap)
        if self.share is None:
            yield from self._fleet(snap, loaded)
        elif (share := self.share()) is not None:  # several controllers: each its share
            yield from self._fleet(snap, share)
        yield from self._backups(snap)
        yield from self._incidents(snap)
        yield from self._failover(snap)

    def _loop(self, snap: Snapshot) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{PREFIX}_last_pass_timestamp_seconds",
            "When the loop last finished a pass (0 before the first).",
            value=snap.last_pass or 0.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_suspended",
            "1 while applying is suspended (`reconcile suspend`).",
            value=1.0 if snap.suspended is not None else 0.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_pinned",
            "1 while `reconcile pin` holds the git source's commit in force.",
            value=1.0 if snap.pinned else 0.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_backoff_keys",
            "(host, service) pairs whose healing is backing off.",
            value=float(snap.backoffs),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_spec_rejected",
            "1 while the state file is refused and the last good one is in force.",
            value=1.0 if snap.spec_error else 0.0,
        )
        leader = _gauge(
            "leader",
            "1 while this controller leads (with etcd shards: per shard).",
            "shard",
        )
        for shard, leads in sorted((self.leading() if self.leading else {"0": True}).items()):
            leader.add_metric([shard], 1.0 if leads else 0.0)
        yield leader
        if snap.source:
            spec = _gauge(
                "spec_commit_info",
                "1 for the git source's commit in force (`source:`).",
                "source",
                "commit",
            )
            spec.add_metric([snap.source, snap.spec_commit or ""], 1.0)
            yield spec

    def _fleet(self, snap: Snapshot, loaded: LoadedFleet | None) -> Iterator[Metric]:
        """Every host and service of the spec (without one, those the loop saw)."""
        up = _gauge(
            "host_up",
            "1 if the host answered the loop's last look (0: unreachable, or not seen yet).",
            "host",
        )
        for host in sorted(loaded.fleet.hosts if loaded else snap.hosts):
            up.add_metric([host], 1.0 if snap.hosts.get(host) else 0.0)
        yield up
        healthy = _gauge(
            "service_healthy",
            "1 if the service's health checks pass (0: failing, its host unreachable, "
            "or not seen yet).",
            "host",
            "service",
        )
        drift = _gauge(
            "drift",
            "1 if the service is out of sync with the spec.",
            "host",
            "service",
        )
        last_healthy = _gauge(
            "service_last_healthy_timestamp_seconds",
            "When the service last passed its checks (the loop's start if it has not since "
            "then); none before the loop has looked at it.",
            "host",
            "service",
        )
        rto = _gauge(
            "service_rto_seconds",
            "The service's recovery time objective.",
            "host",
            "service",
        )
        seen = {row.name: row for row in snap.services}
        wanted = (
            {name: (s.host, s.rto.total_seconds()) for name, s in loaded.fleet.services.items()}
            if loaded
            else {row.name: (row.host, None) for row in snap.services}
        )
        for name, (host, objective) in sorted(wanted.items()):
            row = seen.get(name)
            labels = [host, name]
            healthy.add_metric(labels, 1.0 if row and row.health == "Healthy" else 0.0)
            drift.add_metric(labels, 1.0 if row and row.sync == "OutOfSync" else 0.0)
            if objective is not None:
                rto.add_metric(labels, objective)
            if row is not None and row.last_healthy is not None:
                last_healthy.add_metric(labels, row.last_healthy)
        yield healthy
        yield drift
        yield last_healthy
        yield rto

    def _backups(self, snap: Snapshot) -> Iterator[Metric]:
        newest = _gauge(
            "backup_last_snapshot_timestamp_seconds",
            "When the newest confirmed snapshot was taken, by policy and copy (copy='' "
            "for the policy's repository; 0 before the first).",
            "policy",
            "copy",
        )
        rpo = _gauge(
            "backup_rpo_seconds",
            "The recovery point objective, by policy and copy (copy='' for the repository).",
            "policy",
            "copy",
        )
        age = _gauge(
            "backup_age_seconds",
            "Age of the newest snapshot the repository confirmed, by policy (none before "
            "the first: alert on the timestamp instead).",
            "policy",
        )
        for backup in snap.backups:
            labels = [backup.policy, backup.copy or ""]
            newest.add_metric(labels, backup.newest_at or 0.0)
            rpo.add_metric(labels, backup.rpo)
            if backup.copy is None and backup.age is not None:
                age.add_metric([backup.policy], backup.age)
        yield newest
        yield rpo
        yield age

    def _incidents(self, snap: Snapshot) -> Iterator[Metric]:
        incidents = GaugeMetricFamily(
            f"{PREFIX}_incidents_open", "Open incidents by severity.", labels=["severity"]
        )
        for severity in ("P0", "P1", "P2", "P3"):
            count = sum(
                1 for i in snap.incidents if i["status"] == "open" and i["severity"] == severity
            )
            incidents.add_metric([severity], float(count))
        yield incidents
        yield GaugeMetricFamily(
            f"{PREFIX}_notifications_unsent",
            "Notifications in the outbox not yet accepted.",
            value=float(snap.unsent),
        )
        drill = _gauge(
            "drill_measured_seconds",
            "The last DR drill's measured times, by step and subject.",
            "step",
            "subject",
            "verdict",
        )
        for step in snap.drill:
            if step.get("measured_s") is not None:
                drill.add_metric(
                    [step["kind"], step["subject"], step["verdict"]], float(step["measured_s"])
                )
        yield drill

    def _failover(self, snap: Snapshot) -> Iterator[Metric]:
        if not snap.active:
            return
        yield GaugeMetricFamily(
            f"{PREFIX}_failover_epoch", "The failover epoch.", value=float(snap.epoch)
        )
        active = _gauge(
            "failover_active",
            "1 on the host running the failover services.",
            "host",
        )
        active.add_metric([snap.active], 1.0)
        yield active


def build_labels() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "version": version("fleet-reconciler"),
        "python": platform.python_version(),
        "pyinfra": version("pyinfra"),
    }


def _gauge(name: str, text: str, *labels: str) -> GaugeMetricFamily:
    """A gauge of ours (`fleet_reconciler_NAME`), with its label names."""
    return GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=list(labels))
