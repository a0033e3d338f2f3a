"""The outbox sender: delivers queued notifications, off the reconcile loop's thread, so
a slow or dead channel never delays a pass.

Each channel is its own queue with its own failures. Per channel, in order: a
notification that fails blocks the ones after it on the same channel until it is
retried (with backoff, or the channel's `retry_after`), so every message arrives once
and in order. At most one message per second goes to a Telegram chat. A notification
whose channel the spec no longer names is kept, with that error.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from reconciler.apply.context import Report
from reconciler.channels.interface import ChannelError
from reconciler.channels.send import deliver
from reconciler.flows.background import in_background
from reconciler.store.incidents import Incidents
from reconciler.store.journal import Journal
from reconciler.store.memory import MemoryUnavailable
from reconciler.untrusted.http import bounded_client
from reconciler.untrusted.text import shown
from state.secrets import SecretUnavailable
from state.spec.notifications import Notifications, TelegramChannel

BACKOFF_MAX_S = 300.0
TELEGRAM_GAP_S = 1.0
CHANNEL_BATCH = 50  # a round's look at one channel's queue


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_MAX_S, 5 * 2**attempts))


class OutboxSender:
    def __init__(self, store: Incidents, client: httpx.Client, report: Report) -> None:
        self.store, self.client, self.report = store, client, report
        self.last_sent: dict[str, float] = {}
        self.waiting = False  # whether the last round found anything queued

    def round(self, notifications: Notifications | None) -> int:
        """Deliver what is due now, each channel's queue in order; how many were sent."""
        channels = self.store.waiting_channels()
        self.waiting = bool(channels)
        return sum(self._channel(name, notifications) for name in channels)

    def _channel(self, name: str, notifications: Notifications | None) -> int:
        """One channel's queue, oldest first, until one waits or fails. Whatever a channel
        raises (its own error, or an answer it could not parse) is that channel's failure
        alone, as Alertmanager keeps its receivers apart: the others still deliver."""
        channel = notifications.channels.get(name) if notifications else None
        sent = 0
        for item in self.store.unsent(limit=CHANNEL_BATCH, channel=name):
            if item.next_try > time.time():  # the channel's oldest waits: so do the rest
                break
            if not self.store.claim(name):  # another controller's sender has this channel
                break
            if channel is None:
                self.store.failed(item, "channel not in the spec in force", time.time() + 3600)
                break
            if isinstance(channel, TelegramChannel):
                gap = self.last_sent.get(name, 0.0) + TELEGRAM_GAP_S - time.time()
                if gap > 0:
                    time.sleep(gap)
            try:
                note = deliver(channel, item.key, item.payload, self.client)
            except Exception as exc:
                known = isinstance(exc, ChannelError | SecretUnavailable)
                why = shown(str(exc) if known else f"{type(exc).__name__}: {exc}")[:500]
                retry = getattr(exc, "retry_after", None) or backoff(item.attempts)
                self.store.failed(item, why, time.time() + retry)
                self.report(f"notify {name}: {why}; retry in {retry:g}s")
                break
            self.store.sent(item)
            self.last_sent[name] = time.time()
            self.report(f"notify {name}: {note} ({item.payload['transition']} {item.incident})")
            sent += 1
        return sent

    def drain(self, notifications: Notifications | None, seconds: float) -> int:
        """Rounds until nothing is left unsent or `seconds` pass (a one-shot run's last
        step); what a channel still refuses stays queued."""
        deadline, sent = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            sent += self.round(notifications)
            left = deadline - time.monotonic()
            if not self.store.due(time.time() + left, limit=1):  # nothing due before the end
                break
            time.sleep(0.5)
        return sent


BUSY_S = 1.0  # between rounds while anything is queued


def _rest(stop: threading.Event, wake: threading.Event | None, seconds: float) -> None:
    """Until the next round: `seconds`, or less when stopped or woken."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        if wake is not None and wake.is_set():
            break
        stop.wait(min(0.1, max(0.0, deadline - time.monotonic())))
    if wake is not None:
        wake.clear()


@contextlib.contextmanager
def sending(
    current: Callable[[], Notifications | None],
    journal_path: Path,
    report: Report,
    store: Callable[[Journal], Incidents],
    wake: threading.Event | None = None,
    idle_s: float = BUSY_S,
) -> Iterator[None]:
    """Deliver the outbox from a thread until the block ends (`reconcile watch`); `store`
    opens the outbox on the thread's own journal connection. It looks again every
    second while anything is queued; an empty outbox is looked at every `idle_s` (with
    etcd, each look is a request), or at once when `wake` is set (the desk queued)."""

    def run(stop: threading.Event) -> None:
        journal = Journal(journal_path)
        outbox = store(journal)
        with bounded_client() as client:
            sender = OutboxSender(outbox, client, report)
            while not stop.is_set():
                try:
                    sender.round(current())
                except MemoryUnavailable as exc:  # etcd away: the next round tries again
                    report(f"notify: {exc}")
                except Exception as exc:  # a sender outlives one bad round
                    report(f"notify: round failed: {exc!r}")
                _rest(stop, wake, BUSY_S if sender.waiting or wake is None else idle_s)
        outbox.release()  # a clean exit gives its channels to the next sender at once
        journal.close()

    with in_background("outbox", run):
        yield
