"""What every channel module offers, and the one error they raise."""

from __future__ import annotations

from typing import Any, Protocol

import httpx


class ChannelError(RuntimeError):
    """A delivery failed; `retry_after` is the channel's own wish, when it said one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


Message = dict[str, Any]
"""One notification from the outbox: severity, transition, text, fingerprint, distress."""


class ChannelModule(Protocol):
    def deliver(self, channel: Any, key: str, message: Message, client: httpx.Client) -> str:
        """Send `message` once (`key` names the delivery); a short note of what the
        channel did. Raises ChannelError."""
        ...
