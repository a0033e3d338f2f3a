"""One step of the DR drill, measured against its objective: the record the drill
writes and status, the JSON output and the table read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Verdict = Literal["pass", "breach", "failed", "skipped"]


@dataclass(frozen=True)
class DrillStep:
    kind: Literal["restart", "recovery", "restore", "channel", "failover"]
    subject: str
    objective: str
    objective_s: float | None
    measured_s: float | None
    verdict: Verdict
    t_fault: float | None = None
    t_detect: float | None = None
    t_healthy: float | None = None
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return asdict(self)
