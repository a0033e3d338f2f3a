"""Gitea's webhook, `POST /hooks/gitea`: the forge's deliveries and the trust decision.

A delivery is believed only when `X-Gitea-Signature` is the HMAC-SHA256 of the exact
body under the source's webhook secret, compared in constant time. The order of the
checks is the order of their cost to us: the body's size, then that a signature header
is there at all, and only then is the secret resolved (which may start an `age`
process) and the HMAC computed; anything else gets 401 and changes nothing. A good one
only says "fetch now" or "review pull request N": the payload's commit ID is never used
(the branch or the pull request's head is fetched and resolved again), so a replayed or
forged body can at most cause a fetch. `X-Gitea-Delivery` is outside the HMAC, so it
means nothing: a body is counted once by its digest within `REPLAY_WINDOW_S`, whatever
delivery ID it comes under. Polling stays the fallback when the forge cannot reach the
controller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from reconciler.untrusted.limits import MAX_BODY_BYTES
from state.secrets import SecretUnavailable, resolve_secret
from state.spec.source import GitSource

DELIVERY_MEMORY = 1000
REPLAY_WINDOW_S = 3600.0  # a signed body seen again within this is a replay
REVIEWED_ACTIONS = ("opened", "synchronized", "reopened")  # those that move the head

Verdict = Literal["fetch", "duplicate", "unsigned", "bad signature", "too large"]
Hook = Callable[[bytes, str | None, str | None, str | None], tuple[int, str]]
"""A webhook's handler: (body, signature header, delivery ID, event) -> (status, one line)."""


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is the hex HMAC-SHA256 of `body` under `secret` (constant time)."""
    if not header or not secret:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.strip().lower())


@dataclass
class Deliveries:
    """The signed bodies seen lately, by digest: one seen again within `window` seconds
    (under any delivery ID) triggers nothing."""

    memory: int = DELIVERY_MEMORY
    window: float = REPLAY_WINDOW_S
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, body: bytes) -> bool:
        digest, now = hashlib.sha256(body).hexdigest(), self.clock()
        with self._lock:
            while self._seen and (
                len(self._seen) >= self.memory
                or next(iter(self._seen.values())) < now - self.window
            ):
                self._seen.popitem(last=False)
            if digest in self._seen:
                return False
            self._seen[digest] = now
            return True


def judge(
    secret: Callable[[], bytes], body: bytes, signature: str | None, seen: Deliveries
) -> Verdict:
    """What to do with one delivery. `secret` is called only for a delivery that carries
    a signature (resolving it may cost a process); raises what it raises."""
    if len(body) > MAX_BODY_BYTES:
        return "too large"
    if not signature or len(signature) > 200:
        return "unsigned"
    if not signature_ok(secret(), body, signature):
        return "bad signature"
    if not seen.first_time(body):
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


def gitea_hook(
    source: Callable[[], GitSource | None],
    fetch_now: Callable[[], None],
    review: Callable[[int], bool] | None = None,
) -> Hook:
    """The handler of `POST /hooks/gitea`: a push signed with the source's secret calls
    `fetch_now`; a signed `pull_request` (opened, synchronized, reopened) queues its
    review through `review` (with `source.reviews`; False: the queue is full)."""
    seen = Deliveries()

    def handle(
        body: bytes, signature: str | None, delivery: str | None, event: str | None = None
    ) -> tuple[int, str]:
        del delivery  # outside the HMAC: it proves nothing, and is not used
        current = source()
        if current is None or current.webhook_secret is None:
            return 404, "no webhook is configured (source.webhook_secret)"
        reference = current.webhook_secret
        try:
            verdict = judge(
                lambda: resolve_secret(reference).reveal().encode(), body, signature, seen
            )
        except SecretUnavailable:
            return 503, "the webhook secret cannot be read on the controller"
        if verdict == "fetch" and event == "pull_request":
            number = pull_to_review(event, body)
            if number is None or review is None or not current.reviews:
                return 200, "not a pull request to review (source.reviews, action)"
            if not review(number):
                return 503, "the review queue is full"
            return 202, f"reviewing pull request {number}"
        if verdict == "fetch":
            fetch_now()
            return 202, "fetching"
        if verdict == "duplicate":
            return 200, "this body was delivered already"
        return (413 if verdict == "too large" else 401), verdict

    return handle
