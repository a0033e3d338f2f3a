"""The placement record: where the failover services run now, and the epoch.

Its own module, apart from `state.placement` (which derives the placed fleet from the
spec), so that the SSH worker, which carries it in every request, need not load the
spec's models to read it: the worker starts once per `reconcile` process.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Placement(BaseModel):
    """Where the failover services run now, and the epoch (the fencing token)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: str | None = Field(None, description="Host running them; None: the primary.")
    epoch: int = Field(0, ge=0, description="Goes up at every failover, failback and switchover.")
    since: float = Field(
        0.0, ge=0, description="When the move to this placement committed (controller clock)."
    )


HOME = Placement()
