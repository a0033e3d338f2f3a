"""Whatever the hosts say, the journal stores bounded text, and a bounded amount an hour."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from reconciler.store.journal import MAX_PLAN, MAX_TEXT, Journal
from reconciler.store.text_budget import HOURLY_TEXT_BUDGET


def test_a_huge_answer_is_stored_cut_with_its_size_and_hash(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    run = journal.start_run("f", "sha", None, None, "watch", {"summary": {"pending": 1}})
    journal.record(run, "h1", "svc", "unit", "error", "x" * (20 << 20))
    journal.record_event(1.0, "P2", "k", "h1", None, "y" * (1 << 20), {"error": "z" * (1 << 20)})
    (detail,) = sqlite3.connect(tmp_path / "j.db").execute("SELECT detail FROM results").fetchone()
    assert len(detail) <= MAX_TEXT
    assert "cut; whole: 20971520 bytes, sha256 " in detail
    (event,) = journal.events()
    assert len(event.message) <= MAX_TEXT and "not_stored" in event.context


def test_a_plan_past_the_bound_keeps_its_summary_only(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    plan = {"state_file": "f", "summary": {"pending": 2}, "hosts": [{"diff": "d" * MAX_PLAN}]}
    journal.start_run("f", "sha", None, None, "watch", plan)
    (stored,) = sqlite3.connect(tmp_path / "j.db").execute("SELECT plan FROM runs").fetchone()
    kept = json.loads(stored)
    assert kept["summary"] == {"pending": 2} and "hosts" not in kept
    assert kept["not_stored"].startswith("larger than 64 KiB: ")


def test_the_hourly_budget_bounds_growth(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    run = journal.start_run("f", "sha", None, None, "watch", {})
    for _ in range(HOURLY_TEXT_BUDGET // MAX_TEXT + 100):
        journal.record(run, "h1", "svc", "unit", "error", "x" * MAX_TEXT)
    rows = sqlite3.connect(tmp_path / "j.db").execute("SELECT detail FROM results").fetchall()
    stored = sum(len(r[0]) for r in rows)
    assert stored <= HOURLY_TEXT_BUDGET + 200 * len(rows)
    assert rows[-1][0].startswith("(not stored, the journal's hourly budget is spent: ")
