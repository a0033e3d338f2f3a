"""`notifications:`: channels, routes by severity, and escalation."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field

from state.spec.base import Severity, Spec
from state.types import (
    AbsPath,
    Duration,
    Name,
    OwnerRepo,
    SecretRef,
    UnitLine,
)
from state.url_types import (
    HttpUrl,
)

DEFAULT_REPEAT: dict[Severity, timedelta] = {
    "P0": timedelta(minutes=30),
    "P1": timedelta(hours=4),
    "P2": timedelta(hours=4),
    "P3": timedelta(hours=4),
}


class TelegramChannel(Spec):
    """A Telegram bot message."""

    kind: Literal["telegram"] = Field(description="Telegram bot API.", examples=["telegram"])
    api_url: HttpUrl = Field("https://api.telegram.org", description="Bot API base URL.")
    token: SecretRef = Field(description="Bot token reference.", examples=["env:TELEGRAM_TOKEN"])
    chat_id: str = Field(
        pattern=r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$",
        description="Chat to post to: its numeric ID (negative for a group) or "
        "@channelusername, as the Bot API takes it.",
        examples=["123456"],
    )


class GiteaIssueChannel(Spec):
    """An issue opened in a Gitea repository."""

    kind: Literal["gitea_issue"] = Field(description="Gitea issue.", examples=["gitea_issue"])
    url: HttpUrl = Field(description="Gitea base URL.", examples=["http://198.18.0.12:3000"])
    repo: OwnerRepo = Field(description="owner/name.", examples=["ops/fleet"])
    token: SecretRef = Field(description="API token reference.", examples=["env:GITEA_TOKEN"])
    labels: list[UnitLine] = Field(
        default_factory=list,
        description="Label names put on the issues (resolved to the repository's label IDs; "
        "names the repository lacks are left out and reported).",
        examples=[["incident"]],
    )


class LogChannel(Spec):
    """A structured log line."""

    kind: Literal["log"] = Field(description="Log line.", examples=["log"])


Channel = Annotated[TelegramChannel | GiteaIssueChannel | LogChannel, Field(discriminator="kind")]


class EscalationLevel(Spec):
    """One level of the escalation matrix (the runbook: father at 5 minutes, grandfather at 30)."""

    after: Duration = Field(
        description="An incident still open (and not acknowledged) this long after it "
        "opened reaches this level.",
        examples=["5m"],
    )
    notify: list[Name] = Field(
        min_length=1, description="Channels told when it does.", examples=[["incidents"]]
    )
    severity: Severity | None = Field(
        None,
        description="Raise the incident to this severity (never lowers it).",
        examples=["P0"],
    )
    requested_action: Literal[
        "father_intervention", "grandfather_intervention", "operator_intervention"
    ] = Field(
        "operator_intervention",
        description="The distress signal's requested_action at this level.",
        examples=["father_intervention"],
    )


class Notifications(Spec):
    """Where events of each severity go (the runbook: Telegram for P0, Gitea for P1, log else)."""

    channels: dict[Name, Channel] = Field(description="Named channels.")
    routes: dict[Severity, list[Name]] = Field(
        description="Channel names per severity.", examples=[{"P0": ["telegram"]}]
    )
    repeat_interval: dict[Severity, Duration] = Field(
        default_factory=lambda: dict(DEFAULT_REPEAT),
        description="An open incident is sent again at most this often, per severity "
        "(severities left out keep their default: P0 30m, others 4h).",
        examples=[{"P0": "30m"}],
    )
    escalation: list[EscalationLevel] = Field(
        default_factory=list,
        description="Escalation levels, in order of `after`; `reconcile incidents ack ID` "
        "stops an incident's escalation.",
    )
    distress_dir: AbsPath | None = Field(
        None,
        description="Directory on the controller where each P0/P1 notification is also "
        "written as a distress-signal JSON file, for agents to read; unset, none are written.",
        examples=["/var/lib/fleet-reconciler/distress"],
    )
    agent: UnitLine = Field(
        "fleet-reconciler",
        description="The `agent` field of distress signals (the runbook's format).",
        examples=["allegro"],
    )

    def repeat_for(self, severity: Severity) -> timedelta:
        return self.repeat_interval.get(severity, DEFAULT_REPEAT[severity])
