"""Sending through a channel, whichever it is: the one dispatch table, and the runbook's
DR "Test 4" message through each channel (`reconcile notify test`, the drill)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from reconciler.channels import gitea_issue, log_line, telegram
from reconciler.channels.interface import ChannelError, ChannelModule, Message
from state.secrets import SecretUnavailable
from state.spec.notifications import (
    Channel,
    GiteaIssueChannel,
    LogChannel,
    Notifications,
    TelegramChannel,
)

MODULES: dict[type, ChannelModule] = {
    TelegramChannel: telegram,
    GiteaIssueChannel: gitea_issue,
    LogChannel: log_line,
}


def deliver(channel: Channel, key: str, message: Message, client: httpx.Client) -> str:
    """Send one notification; a short note of what the channel did. Raises ChannelError."""
    return MODULES[type(channel)].deliver(channel, key, message, client)


def notification_test_message(agent: str, now: float) -> dict[str, Any]:
    """The runbook's DR "Test 4" message: a P3 through a channel, in the distress format."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {
        "incident": "test",
        "fingerprint": f"test:{int(now)}",
        "severity": "P3",
        "transition": "opened",
        "text": f"[P3] test: fleet-reconciler notification test at {stamp}",
        "distress": {
            "timestamp": stamp,
            "agent": agent,
            "severity": "P3",
            "category": "test",
            "component": "notifications",
            "message": "notification test (reconcile notify test)",
            "context": {
                "last_success": stamp,
                "attempts": 0,
                "error": "",
                "auto_recovery_attempted": False,
            },
            "requested_action": "none",
            "escalation_timeout": stamp,
        },
    }


def send_test_messages(
    notifications: Notifications, names: list[str], client: httpx.Client
) -> list[tuple[str, bool, str]]:
    """Send the test message through each channel: (name, answered, what it said). A
    Gitea test issue is opened and closed again."""
    now = time.time()
    message = notification_test_message(notifications.agent, now)
    results = []
    for name in names:
        channel = notifications.channels[name]
        key = f"test-{int(now)}-{name}"
        try:
            note = deliver(channel, key, message, client)
            if isinstance(channel, GiteaIssueChannel):
                done = {**message, "transition": "resolved"}
                note += "; " + deliver(channel, key + "-end", done, client)
            results.append((name, True, note))
        except (ChannelError, SecretUnavailable) as exc:
            results.append((name, False, str(exc)))
    return results
