"""`reconciler:`: how `reconcile watch` runs, and how several controllers coordinate."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from state.spec.base import Severity, Spec
from state.types import (
    Count,
    Duration,
    FineDuration,
)
from state.url_types import (
    HttpUrl,
)


class LocalCoordination(Spec):
    """One controller: its journal and host locks (the default)."""

    kind: Literal["local"] = Field(description="Embedded, nothing to run.", examples=["local"])


class EtcdCoordination(Spec):
    """Several controllers, one leader, elected on etcd (see the README's "Several
    controllers"). Plain HTTP to the endpoints: TLS and etcd auth are not supported yet,
    so keep etcd on loopback or a private network."""

    kind: Literal["etcd"] = Field(description="Leader election on etcd.", examples=["etcd"])
    endpoints: list[HttpUrl] = Field(
        min_length=1,
        description="etcd client URLs (the v3 JSON gateway), tried in turn.",
        examples=[["http://198.18.0.1:2379"]],
    )
    prefix: str = Field(
        "/fleet-reconciler",
        pattern=r"^/[A-Za-z0-9._/-]{1,100}$",
        description="Key prefix of this fleet's leader key and shared state.",
    )
    ttl: Duration = Field(
        timedelta(seconds=15),
        description="Lease of the leader key: a dead leader is replaced after at most this.",
    )
    retry_timeout: Duration = Field(
        timedelta(seconds=5),
        description="Timeout of one etcd call; a leader stops acting once its last renewal "
        "is older than ttl - retry_timeout.",
    )
    shards: int = Field(
        1,
        ge=1,
        le=64,
        strict=True,
        description="Cut the fleet into this many shards, each led by one controller: "
        'the controllers share them out (see the README\'s "Where one controller ends"). '
        "Hosts that act on each other (a failover pair, a backup's host and its sftp "
        "repository and copies) always share a shard. 1: one leader for the whole fleet.",
        examples=[4],
    )


Coordination = Annotated[LocalCoordination | EtcdCoordination, Field(discriminator="kind")]


class ReconcilerSettings(Spec):
    """How `reconcile watch` runs: its timers, self-healing backoff and escalation."""

    interval: Duration = Field(
        timedelta(seconds=60), description="Full reconcile every interval.", examples=["60s"]
    )
    probe_interval: Duration = Field(
        timedelta(seconds=2),
        description="Health-probe pass every probe_interval; drift wakes a reconcile of that host.",
        examples=["2s"],
    )
    debounce: FineDuration = Field(
        timedelta(milliseconds=50),
        description="Quiet time after the last write to the state file before it is read: "
        "an editor's save is a burst of writes (write-rename, truncate-write, several "
        "writes), and 50ms coalesces each into one reload (tests/unit/test_spec_watch.py).",
        examples=["50ms"],
    )
    require_committed: bool = Field(
        False, description="Refuse to apply a state file with uncommitted git changes."
    )
    backoff_initial: Duration = Field(
        timedelta(seconds=10), description="First retry delay after healing a service failed."
    )
    backoff_max: Duration = Field(timedelta(minutes=5), description="Retry delay cap.")
    backoff_reset: Duration = Field(
        timedelta(minutes=10), description="Healthy this long and the backoff starts over."
    )
    escalate_after_attempts: Count = Field(
        3, description="Failed healing attempts before an escalation event."
    )
    escalate_after: Duration = Field(
        timedelta(minutes=5),
        description="Unresolved this long and it escalates (the runbook's Level 1: 0-5 minutes).",
    )
    escalation_severity: Severity = Field("P1", description="Severity of escalation events.")
    drill_every: Duration | None = Field(
        timedelta(days=30),
        description="`reconcile watch` runs the DR drill (`reconcile drill`: it restarts and "
        "stops each service) this often, counted from the last drill or the watch's first "
        "start (the runbook's monthly DR test); unset, never.",
        examples=["30d"],
    )
    journal_retention: Duration = Field(
        timedelta(days=90),
        description="`reconcile watch` deletes the journal's runs, their results and events "
        "older than this, once a day (the newest 100 runs and the newest event of each kind "
        "stay; the snapshot ledger, the failover record, incidents and the loop's state are "
        "never pruned). `reconcile journal prune` does it by hand.",
        examples=["90d"],
    )
    coordination: Coordination = Field(
        default_factory=lambda: LocalCoordination(kind="local"),
        description="How controllers coordinate: `local` (one controller) or `etcd` "
        "(several, one leader).",
    )

    @model_validator(mode="after")
    def _leader_demotes_in_time(self) -> ReconcilerSettings:
        """Patroni's rule: the loop's wait plus two retries fit in the lease."""
        etcd = self.coordination
        if isinstance(etcd, EtcdCoordination):
            need = self.probe_interval + 2 * etcd.retry_timeout
            if need > etcd.ttl:
                raise ValueError(
                    f"coordination.ttl ({etcd.ttl.total_seconds():g}s) must be at least "
                    f"probe_interval + 2 x retry_timeout ({need.total_seconds():g}s), so that "
                    "a leader that cannot renew stops acting before its lease expires"
                )
        return self
