"""The dashboard's charts: valid SVG whatever the input, ages and heal times drawn where
they belong, and text inside them escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from reconciler.render.charts import (
    BOTTOM,
    HEIGHT,
    TOP,
    HealPoint,
    backup_age_chart,
    heal_chart,
    heal_trend,
)

SVG = "{http://www.w3.org/2000/svg}"
NOW, DAY, HOUR = 1_800_000_000.0, 86400.0, 3600.0


def _points(svg: str) -> list[tuple[float, float]]:
    [line] = ET.fromstring(svg).iter(f"{SVG}polyline")
    return [(float(x), float(y)) for x, y in (p.split(",") for p in line.get("points", "").split())]


def _rpo_y(svg: str) -> float:
    dashed = [e for e in ET.fromstring(svg).iter(f"{SVG}line") if e.get("stroke-dasharray")]
    return float(dashed[0].get("y1", "nan"))


def test_hourly_snapshots_stay_under_an_hour_rpo_and_a_gap_rises_above_it() -> None:
    hourly = [NOW - i * HOUR + 60 for i in range(24 * 8)]
    svg = backup_age_chart(hourly, 2 * HOUR, NOW, 7 * DAY)
    assert all(y >= _rpo_y(svg) for _, y in _points(svg))  # never above the RPO line
    gap = [t for t in hourly if not NOW - 2 * DAY < t < NOW - 2 * DAY + 5 * HOUR]
    svg = backup_age_chart(gap, 2 * HOUR, NOW, 7 * DAY)
    assert min(y for _, y in _points(svg)) < _rpo_y(svg)  # the 5 h gap breaches


def test_the_age_at_the_window_edge_comes_from_the_snapshot_before_it() -> None:
    svg = backup_age_chart([NOW - 8 * DAY], DAY, NOW, 7 * DAY)
    points = _points(svg)
    assert len(points) == 2 and points[0][1] > points[1][1]  # one rising line, never reset
    assert "no snapshot" in backup_age_chart([], DAY, NOW, 7 * DAY)


def test_heal_chart_one_dot_per_incident_in_the_window_hollow_when_open() -> None:
    points = [
        HealPoint(NOW - 3 * DAY, 30.0, "P1"),
        HealPoint(NOW - 2 * DAY, 600.0, "P3"),
        HealPoint(NOW - HOUR, None, "P0"),
        HealPoint(NOW - 9 * DAY, 5.0, "P2"),  # before the window
    ]
    circles = list(ET.fromstring(heal_chart(points, NOW, 7 * DAY)).iter(f"{SVG}circle"))
    assert len(circles) == 3
    assert [c.get("fill") for c in circles][-1] == "none"  # the open P0, at its age
    ys = [float(c.get("cy", "nan")) for c in circles]
    assert ys[1] < ys[0]  # ten minutes to heal is drawn higher than thirty seconds
    assert min(ys) >= TOP and max(ys) <= HEIGHT - BOTTOM


def test_the_trend_says_when_healing_got_slower() -> None:
    points = [HealPoint(NOW - (10 - i) * HOUR, 10.0 * (1 + 9 * (i >= 4)), "P3") for i in range(8)]
    assert heal_trend(points) == "median time to heal 10s then 100s: worse"
    assert heal_trend(points[:2]) == "2 healed"


@given(
    st.lists(
        st.tuples(
            st.floats(-30 * DAY, DAY),
            st.one_of(st.none(), st.floats(0, 60 * DAY)),
            st.text(max_size=20),
        ),
        max_size=30,
    ),
    st.lists(st.floats(-40 * DAY, DAY), max_size=30),
    st.floats(1, 30 * DAY),
)
def test_any_input_gives_valid_svg_and_text_stays_text(
    incidents: list[tuple[float, float | None, str]], snapshots: list[float], rpo: float
) -> None:
    heals = [HealPoint(NOW + at, healed, severity) for at, healed, severity in incidents]
    for svg in (
        heal_chart(heals, NOW, 7 * DAY),
        backup_age_chart([NOW + t for t in snapshots], rpo, NOW, 7 * DAY),
    ):
        root = ET.fromstring(svg)  # well-formed whatever the severity text held
        assert not list(root.iter(f"{SVG}script")) and not list(root.iter("script"))
