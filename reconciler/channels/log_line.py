"""The log channel: one JSON line on stderr, for P2 and P3 (the runbook's "log line")."""

from __future__ import annotations

import json
import sys

import httpx

from reconciler.channels.interface import Message
from state.spec.notifications import LogChannel


def deliver(channel: LogChannel, key: str, message: Message, client: httpx.Client) -> str:
    line = {"level": "notification", "key": key, **message["distress"]}
    print(json.dumps(line), file=sys.stderr, flush=True)
    return "logged"
