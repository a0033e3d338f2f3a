"""How much text the journal stores whole: a budget per clock hour, beyond which a text
is kept as its size and hash (`fingerprint`), so that whatever hosts answer, the journal
grows by a bounded amount."""

from __future__ import annotations

import hashlib

HOURLY_TEXT_BUDGET = 16 << 20  # what one process stores whole per hour; then sizes and hashes


def fingerprint(text: str) -> str:
    """What is kept of a text not stored: its size and hash."""
    data = text.encode()
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"


class TextBudget:
    """Bytes of text a journal may store whole in the current clock hour: whatever the
    hosts answer, the journal grows by at most this much text an hour (and rows of a
    fixed size)."""

    def __init__(self, per_hour: int = HOURLY_TEXT_BUDGET) -> None:
        self.per_hour, self.hour, self.spent = per_hour, -1, 0

    def take(self, size: int, now: float) -> bool:
        hour = int(now // 3600)
        if hour != self.hour:
            self.hour, self.spent = hour, 0
        if self.spent + size > self.per_hour:
            return False
        self.spent += size
        return True
