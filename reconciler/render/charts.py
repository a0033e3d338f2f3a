"""Small SVG charts for the dashboard, drawn on the server from the journal. Pure.

Each function takes plain numbers (epoch seconds, durations) and returns one `<svg>`
element as text. Every piece of text in it is escaped here, so the template may mark
it safe. No JavaScript, no build step: the page stays one server-rendered document.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 360, 96
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 8, 18  # the plot area's margins
SEVERITY_COLOURS = {"P0": "#b3261e", "P1": "#e8710a", "P2": "#b58900", "P3": "#6b7280"}


@dataclass(frozen=True)
class HealPoint:
    """One incident: when it opened, how long it took to heal (None: still open)."""

    opened: float
    healed_after: float | None
    severity: str


def _text(value: str) -> str:
    """Text for inside the SVG: escaped, and unprintable characters shown as \\xNN (XML
    has no way to hold most control characters, escaped or not)."""
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in value)
    return escape(shown)


def _x(at: float, start: float, end: float) -> float:
    span = max(end - start, 1.0)
    return LEFT + (min(max(at, start), end) - start) / span * (WIDTH - LEFT - RIGHT)


def _frame(title: str, body: list[str], y_labels: list[tuple[float, str]], days: float) -> str:
    """The svg around a plot: its accessible title, axis labels, a baseline."""
    bottom = HEIGHT - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_text(title)}</title>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#ccc"/>',
        *body,
    ]
    for y, label in y_labels:
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="9" '
            f'fill="#666">{_text(label)}</text>'
        )
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 4}" font-size="9" fill="#666">{days:g}d ago</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" font-size="9" fill="#666" '
        'text-anchor="end">now</text></svg>'
    )
    return "".join(parts)


def short(seconds: float) -> str:
    """A duration in its largest sensible unit: 45s, 12m, 3.5h, 2.0d."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def backup_age_chart(snapshots: Sequence[float], rpo: float, now: float, window: float) -> str:
    """The age of the newest snapshot over the last `window` seconds, against the RPO.

    `snapshots` are the times of the snapshots the repository confirmed (any order; the
    newest one before the window says what the age was when it opened). The age rises
    by one second a second and drops to zero at each snapshot: a sawtooth, with the
    band above the RPO shaded, so a breach is seen at a glance.
    """
    start = now - window
    times = sorted(t for t in snapshots if t <= now)
    newest = max((t for t in times if t <= start), default=None)
    ages: list[tuple[float, float]] = []  # (when, age of the newest snapshot then)
    if newest is not None:
        ages.append((start, start - newest))
    for at in (t for t in times if t > start):
        if newest is not None:
            ages.append((at, at - newest))  # just before this snapshot
        ages.append((at, 0.0))
        newest = at
    if newest is not None:
        ages.append((now, now - newest))
    peak = max([rpo * 1.5, *(age for _, age in ages)])
    bottom, height = HEIGHT - BOTTOM, HEIGHT - BOTTOM - TOP

    def y(age: float) -> float:
        return bottom - age / peak * height

    points = [(_x(at, start, now), y(age)) for at, age in ages]
    rpo_y = y(rpo)
    body = [
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{max(rpo_y - TOP, 0):.1f}" fill="#b3261e" fill-opacity="0.08"/>',
        f'<line x1="{LEFT}" y1="{rpo_y:.1f}" x2="{WIDTH - RIGHT}" y2="{rpo_y:.1f}" '
        'stroke="#b3261e" stroke-dasharray="3 3"/>',
    ]
    if points:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="#116329" stroke-width="1"/>')
    else:
        body.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="11" '
            'fill="#b3261e">no snapshot</text>'
        )
    labels = [(rpo_y, f"RPO {short(rpo)}"), (float(TOP), short(peak))]
    title = f"age of the newest snapshot over {window / 86400:g} days against its RPO"
    return _frame(title, body, labels, window / 86400)


def heal_chart(points: Sequence[HealPoint], now: float, window: float) -> str:
    """Incidents over the last `window` seconds: one dot each, at the time it opened and
    as high as it took to heal (a log scale, 1 s to the longest); an open incident is a
    hollow dot at its age so far. A line joins the running median of the last five
    healed ones, so a trend (getting worse, or better) shows."""
    start = now - window
    shown = sorted((p for p in points if p.opened >= start), key=lambda p: p.opened)
    durations = [p.healed_after if p.healed_after is not None else now - p.opened for p in shown]
    peak = max([60.0, *durations])
    bottom, height = HEIGHT - BOTTOM, HEIGHT - BOTTOM - TOP

    def y(seconds: float) -> float:
        return bottom - math.log10(max(seconds, 1.0)) / math.log10(peak) * height

    body = []
    for p, seconds in zip(shown, durations, strict=True):
        colour = SEVERITY_COLOURS.get(p.severity, "#6b7280")
        fill = "none" if p.healed_after is None else colour
        body.append(
            f'<circle cx="{_x(p.opened, start, now):.1f}" cy="{y(seconds):.1f}" r="2.5" '
            f'fill="{fill}" stroke="{colour}"><title>{_text(p.severity)} '
            f"{'open for' if p.healed_after is None else 'healed in'} "
            f"{_text(short(seconds))}</title></circle>"
        )
    healed = [(p.opened, p.healed_after) for p in shown if p.healed_after is not None]
    trend = [
        (at, statistics.median(h for _, h in healed[max(0, i - 4) : i + 1]))
        for i, (at, _) in enumerate(healed)
    ]
    if len(trend) >= 2:
        path = " ".join(f"{_x(at, start, now):.1f},{y(m):.1f}" for at, m in trend)
        body.append(f'<polyline points="{path}" fill="none" stroke="#1f6feb" stroke-width="1"/>')
    if not shown:
        body.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="11" '
            'fill="#116329">no incidents</text>'
        )
    labels = [(y(peak), short(peak)), (y(60.0), "1m"), (y(1.0), "1s")]
    if peak < 120:
        labels = [(y(peak), short(peak)), (y(1.0), "1s")]
    title = f"time to heal of each incident over {window / 86400:g} days"
    return _frame(title, body, labels, window / 86400)


def heal_trend(points: Sequence[HealPoint]) -> str:
    """In words: the median time to heal, earlier half against later half of the healed."""
    healed = [p.healed_after for p in sorted(points, key=lambda p: p.opened)]
    done = [h for h in healed if h is not None]
    if len(done) < 4:
        return f"{len(done)} healed" if done else "none healed yet"
    half = len(done) // 2
    before, after = statistics.median(done[:half]), statistics.median(done[half:])
    word = "worse" if after > before * 1.25 else "better" if after < before / 1.25 else "steady"
    return f"median time to heal {short(before)} then {short(after)}: {word}"
