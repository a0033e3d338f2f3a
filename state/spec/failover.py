"""`failover:`: which services move from the primary to the backup, when, and fenced how."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from state.fence import default_fence_after
from state.spec.base import Spec
from state.types import (
    Duration,
    Name,
    parse_duration,
)

DEFAULT_GRACE = timedelta(minutes=5)


class Failover(Spec):
    """Move services, with their data, from the primary to the backup when the primary is
    unreachable; fenced so that two copies never run (see the README's Failover)."""

    primary: Name = Field(description="Host that normally runs the services.", examples=["kimi"])
    backup: Name = Field(description="Host that takes them over.", examples=["hermes"])
    services: list[Name] = Field(
        min_length=1,
        description="Services that move (all on the primary).",
        examples=[["timmy-agent", "timmy-health"]],
    )
    data: list[Name] | None = Field(
        None,
        description="Backup policies restored on the backup when it takes over, and run from "
        "there while failed over; unset, every policy of the primary.",
        examples=[["metrics-db"]],
    )
    grace: Duration = Field(
        DEFAULT_GRACE,
        description="How long the primary must be unreachable, from the controller and from "
        "the backup, before the services move (the runbook's 5 minutes).",
        examples=["5m"],
    )
    fence_after: Duration = Field(
        timedelta(minutes=4),
        description="The primary stops the services by itself when the controller has not "
        "renewed its lease for this long; at least 5s shorter than grace. Unset, it follows "
        "grace: 4/5 of it, and at most grace minus 5s (grace 5m: 4m; grace 20s: 15s).",
        examples=["4m"],
    )
    failback: Literal["manual", "automatic"] = Field(
        "manual",
        description="'manual': the services stay on the backup until `reconcile failback`. "
        "'automatic': they return once the primary has been healthy for failback_after.",
    )
    failback_after: Duration = Field(
        timedelta(minutes=10),
        description="Hold-down before an automatic failback.",
        examples=["10m"],
    )
    data_loss: Literal["hold", "allow"] = Field(
        "hold",
        description="'hold': a promotion that would lose more than a data policy's RPO, "
        "or whose data nothing restores, waits for `reconcile failover --accept-data-loss` "
        "(paged once, retried with backoff). 'allow': it promotes anyway, with what "
        "restores or with no data, and states the loss in its P0.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fence_after_follows_grace(cls, data: Any) -> Any:
        """A default follows what the user wrote: unset, fence_after is derived from the
        grace given (not a fixed 4m that a short grace then refuses)."""
        if not isinstance(data, dict) or "fence_after" in data:
            return data
        try:
            grace = parse_duration(data.get("grace", DEFAULT_GRACE))
        except ValueError:
            return data  # grace's own error is reported
        assert isinstance(grace, timedelta)
        return {**data, "fence_after": default_fence_after(grace)}
