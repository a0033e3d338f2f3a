"""Backoff (CrashLoopBackOff semantics), escalation, events and the last-good spec."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from reconciler.daemon.backoff import Backoffs
from reconciler.daemon.spec_source import SpecSource
from reconciler.events.bus import Event, EventBus
from reconciler.events.sinks import journal_sink
from reconciler.store.journal import Journal
from state.spec.controller import ReconcilerSettings
from tests.unit.test_spec import BASE

KEY = ("h1", "ollama")


def test_delays_double_from_10s_and_cap_at_5_minutes() -> None:
    backoffs = Backoffs(ReconcilerSettings())
    delays = [backoffs.record_failure(KEY, now=float(i)).delay for i in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert backoffs.blocked(KEY, now=6.0) and not backoffs.blocked(KEY, now=306.0)
    assert not backoffs.blocked(("h1", "other"), now=6.0)


def test_reset_after_10_minutes_healthy() -> None:
    backoffs = Backoffs(ReconcilerSettings())
    backoffs.record_failure(KEY, 0.0)
    backoffs.record_failure(KEY, 10.0)
    assert not backoffs.record_healthy(KEY, 100.0)
    assert not backoffs.record_healthy(KEY, 699.0)
    assert backoffs.record_healthy(KEY, 700.0)
    assert backoffs.record_failure(KEY, 701.0).delay == 10  # started over


def test_escalates_once_after_n_attempts_or_t_minutes() -> None:
    by_count = Backoffs(ReconcilerSettings())
    assert [by_count.record_failure(KEY, float(i)).escalate for i in range(5)] == [
        False,
        False,
        True,
        False,
        False,
    ]
    by_time = Backoffs(
        ReconcilerSettings(escalate_after_attempts=10, escalate_after=timedelta(minutes=5))
    )
    assert not by_time.record_failure(KEY, 0.0).escalate
    assert by_time.record_failure(KEY, 300.0).escalate


def test_event_bus_survives_a_broken_subscriber(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    bus = EventBus()

    def broken(event: Event) -> None:
        raise RuntimeError("channel down")

    bus.subscribe(broken)
    bus.subscribe(journal_sink(journal))
    bus.emit(Event("P1", "escalation", "ollama not healed", "h1", "ollama", {"attempts": 3}))
    [stored] = journal.events()
    assert (stored.severity, stored.kind, stored.context) == (
        "P1",
        "escalation",
        {"attempts": 3},
    )


def test_broken_edit_keeps_the_last_good_spec_and_is_reported_once(tmp_path: Path) -> None:
    state = tmp_path / "fleet.yaml"
    state.write_text(BASE)
    journal = Journal(tmp_path / "j.db")
    bus = EventBus()
    bus.subscribe(journal_sink(journal))
    source = SpecSource(state, bus, journal)
    assert source.reload()
    good = source.loaded
    state.write_text(BASE.replace("role: primary", "role: boss"))
    assert not source.reload() and not source.reload()
    assert source.loaded is good
    assert source.error is not None and f"{state}:5: hosts.kimi.role" in source.error
    assert [e.kind for e in journal.events()] == ["spec_rejected", "spec_applied"]
    state.write_text(BASE.replace("exec_start: /bin/sleep infinity", "exec_start: /bin/true"))
    assert source.reload() and source.error is None and source.loaded is not good


def test_require_committed_refuses_uncommitted_specs(tmp_path: Path) -> None:
    import subprocess

    state = tmp_path / "fleet.yaml"
    state.write_text(BASE + "reconciler: {require_committed: true}\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    journal = Journal(tmp_path / "j.db")
    source = SpecSource(state, EventBus(), journal)
    assert not source.reload()  # not even in git yet: untracked counts as uncommitted
    subprocess.run([*git, "add", "fleet.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "spec"], check=True)
    assert source.reload() and source.loaded is not None
    state.write_text(state.read_text().replace("/bin/sleep infinity", "/bin/true"))
    assert not source.reload()
    assert source.error is not None and "uncommitted changes" in source.error


def test_recovered_once_when_a_failing_key_is_first_seen_healthy() -> None:
    from reconciler.daemon.backoff import Backoffs
    from state.spec.controller import ReconcilerSettings

    backoffs = Backoffs(ReconcilerSettings())
    key = ("h1", None)
    assert not backoffs.recovered(key)
    backoffs.record_failure(key, 0.0)
    assert backoffs.recovered(key)
    backoffs.record_healthy(key, 1.0)
    assert not backoffs.recovered(key)  # once
    backoffs.record_failure(key, 2.0)
    assert backoffs.recovered(key)  # and again after a new failure
