"""Gitea's push webhook: `POST /hooks/gitea` on the `--http` server.

A delivery is believed only when `X-Gitea-Signature` is the HMAC-SHA256 of the exact
body under the source's webhook secret, compared in constant time; anything else gets
401 and changes nothing. A good one only says "fetch now": the payload's commit ID is
never used (the branch is fetched and resolved again), so a replayed or forged body can
at most cause a fetch. Deliveries are de-duplicated by `X-Gitea-Delivery`; polling stays
the fallback when the forge cannot reach the controller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

MAX_BODY = 1 << 20  # Gitea's push payloads are far smaller; more is refused unread
DELIVERY_MEMORY = 1000
REVIEWED_ACTIONS = ("opened", "synchronized", "reopened")  # those that move the head

Verdict = Literal["fetch", "duplicate", "unsigned", "bad signature", "too large"]


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is the hex HMAC-SHA256 of `body` under `secret` (constant time)."""
    if not header or not secret:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.strip().lower())


@dataclass
class Deliveries:
    """The delivery IDs seen lately: a repeated one triggers nothing."""

    memory: int = DELIVERY_MEMORY

    def __post_init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        with self._lock:
            if delivery in self._seen:
                return False
            self._seen[delivery] = None
            while len(self._seen) > self.memory:
                self._seen.popitem(last=False)
            return True


def judge(
    secret: bytes, body: bytes, signature: str | None, delivery: str | None, seen: Deliveries
) -> Verdict:
    """What to do with one delivery. Pure but for `seen`, which a good one updates."""
    if len(body) > MAX_BODY:
        return "too large"
    if not signature:
        return "unsigned"
    if not signature_ok(secret, body, signature):
        return "bad signature"
    if delivery and not seen.first_time(delivery[:200]):
        return "duplicate"
    return "fetch"


def pull_to_review(event: str | None, body: bytes) -> int | None:
    """The pull request a signed `pull_request` delivery asks to plan: its number only
    (its head is fetched from the forge, never taken from the payload), when the action
    is one that gives it a new head."""
    if event != "pull_request":
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("action") not in REVIEWED_ACTIONS:
        return None
    number = data.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 10**9:
        return None
    return number
