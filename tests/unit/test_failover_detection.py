"""Failover detection: the grace clock, the second opinion, flap damping, failback."""

from __future__ import annotations

from datetime import timedelta

from reconciler.engine.failover_detection import (
    RETRY_MAX_S,
    Sighting,
    alarm,
    assess,
    next_sighting,
    retry_delay,
)
from reconciler.store.failover_state import FailoverState
from state.placement import Placement
from state.spec.failover import Failover

FAILOVER = Failover(
    primary="kimi",
    backup="hermes",
    services=["timmy-agent", "timmy-health"],
    grace=timedelta(seconds=300),
    fence_after=timedelta(seconds=240),
)
LOST = Sighting(primary_reached=False, backup_reached=True, backup_sees_primary=False)
REACHED = Sighting(primary_reached=True, backup_reached=True)


def run(sightings: list[tuple[float, Sighting]], failover: Failover = FAILOVER) -> list[str]:
    state, actions = FailoverState(), list[str]()
    for at, seen in sightings:
        verdict = assess(failover, state, seen, at)
        state = verdict.state
        actions.append(verdict.action)
    return actions


def test_countdown_then_promote_after_grace() -> None:
    state = FailoverState()
    first = assess(FAILOVER, state, LOST, 1000.0)
    assert first.action == "countdown" and first.state.down_since == 1000.0
    later = assess(FAILOVER, first.state, LOST, 1130.0)
    assert later.line == (
        "! failover kimi unreachable for 2m10s (backup agrees); timmy-agent, timmy-health "
        "move to hermes in 2m50s"
    )
    assert assess(FAILOVER, later.state, LOST, 1300.0).action == "promote"


def test_any_success_resets_the_clock() -> None:
    """Flap damping: a link down 10 s in every 30 s, with a 20 s grace, never moves."""
    failover = FAILOVER.model_copy(
        update={"grace": timedelta(seconds=20), "fence_after": timedelta(seconds=10)}
    )
    sightings = []
    for cycle in range(20):
        base = cycle * 30.0
        sightings += [(base + t, LOST) for t in range(0, 11, 5)]
        sightings += [(base + t, REACHED) for t in range(15, 30, 5)]
    assert "promote" not in run(sightings, failover)


def test_backup_that_still_sees_the_primary_blocks_and_says_why() -> None:
    seen = Sighting(False, True, True, "backup reaches 198.18.0.11 on port(s) 22")
    verdicts = [assess(FAILOVER, FailoverState(), seen, float(t)) for t in range(0, 1000, 100)]
    assert {v.action for v in verdicts} == {"blocked"}
    assert "but hermes can: no failover" in verdicts[-1].line
    assert verdicts[-1].state.down_since is None


def test_controller_cut_off_from_the_backup_moves_nothing() -> None:
    seen = Sighting(False, False, None, "backup hermes: no answer")
    actions = run([(float(t), seen) for t in range(0, 1000, 50)])
    assert set(actions) == {"blocked"}


def test_held_failover_waits_until_the_primary_returns() -> None:
    state = FailoverState(down_since=0.0, held="metrics-db: OVER objective")
    held = assess(FAILOVER, state, LOST, 1000.0)
    assert held.action == "held" and "OVER objective" in held.line
    assert assess(FAILOVER, held.state, REACHED, 1001.0).state.held is None


def test_manual_failback_never_moves_by_itself() -> None:
    state = FailoverState(placement=Placement(active="hermes", epoch=1), since=0.0)
    actions = {assess(FAILOVER, state, REACHED, float(t)).action for t in range(0, 10**5, 997)}
    assert actions == {"failed_over"}
    line = assess(FAILOVER, state, REACHED, 50.0).line
    assert "stays fenced: `reconcile failback`" in line


def test_automatic_failback_after_the_hold_down() -> None:
    failover = FAILOVER.model_copy(
        update={"failback": "automatic", "failback_after": timedelta(minutes=10)}
    )
    state = FailoverState(placement=Placement(active="hermes", epoch=1), since=0.0)
    first = assess(failover, state, REACHED, 100.0)
    assert first.action == "failed_over" and first.state.healthy_since == 100.0
    lost_again = assess(failover, first.state, LOST, 400.0)
    assert lost_again.state.healthy_since is None  # the hold-down starts over
    back = assess(failover, lost_again.state, REACHED, 500.0)
    assert assess(failover, back.state, REACHED, 1099.0).action == "failed_over"
    assert assess(failover, back.state, REACHED, 1100.0).action == "failback"


def test_plan_and_status_show_where_each_service_runs_and_why() -> None:
    from reconciler.render.failover_text import failover_json, render_failover

    state = FailoverState(
        placement=Placement(active="hermes", epoch=3), since=1.0, reason="kimi unreachable"
    )
    verdict = assess(FAILOVER, state, LOST, 100.0)
    document = failover_json(FAILOVER, state, verdict)
    assert document["services"][0] == {
        "service": "timmy-agent",
        "desired_host": "kimi",
        "current_host": "hermes",
        "since": 1.0,
        "epoch": 3,
        "why": "kimi unreachable",
    }
    text = render_failover(FAILOVER, state, verdict)
    assert "timmy-agent          on hermes (desired kimi)" in text
    assert "failed over: timmy-agent, timmy-health run on hermes for 1m39s, epoch 3" in text


def test_a_lease_renewed_by_the_lease_thread_restarts_the_clock() -> None:
    """The primary holds whatever lease it last confirmed: the grace may not run out
    before that lease has, or the backup could start while it still runs."""
    state = FailoverState(last_contact=1000.0)
    first = assess(FAILOVER, state, LOST, 1005.0)
    assert first.state.down_since == 1000.0
    renewed = Sighting(False, True, False, "", last_renewal=1100.0)
    later = assess(FAILOVER, first.state, renewed, 1299.0)
    assert later.action == "countdown" and later.state.down_since == 1100.0
    assert assess(FAILOVER, later.state, renewed, 1400.0).action == "promote"


def test_a_confirmed_outage_pages_once_at_once_and_clears_when_the_primary_is_back() -> None:
    """The seed's P0 "primary down" is immediate: raised on the first confirmed sighting
    (not when the grace ends), once per outage, through the move, cleared on return."""
    blocked = Sighting(False, False)
    state, pages = FailoverState(), list[str]()
    for at, seen in [(0, REACHED), (5, blocked), (10, LOST), (15, LOST), (400, LOST)]:
        verdict = assess(FAILOVER, state, seen, float(at))
        paging = alarm(state, verdict, seen)
        pages.append(f"{at}:{paging}")
        state = verdict.state.model_copy(
            update={"alarmed": state.alarmed if paging is None else paging == "raise"}
        )
    # 5: the controller may be the one cut off (no page); 10: confirmed; 400: promote.
    assert pages == ["0:None", "5:None", "10:raise", "15:None", "400:None"]
    moved = state.model_copy(update={"placement": Placement(active="hermes", epoch=1)})
    still_down = assess(FAILOVER, moved, LOST, 500.0)
    assert alarm(moved, still_down, LOST) is None
    back = assess(FAILOVER, moved, REACHED, 600.0)
    assert back.action == "failed_over" and alarm(moved, back, REACHED) == "clear"


def test_a_rolled_back_promotion_is_retried_with_backoff_and_forgotten_when_the_primary_returns() -> (
    None
):
    """Attempts back off 5s, 10s, 20s ... 5m; until then the pass says why and waits.
    The primary answering again ends the outage, and its count."""
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert retry_delay(30) == RETRY_MAX_S
    failed = FailoverState(
        down_since=1000.0, attempts=2, retry_at=1310.0, failure="backup db: nothing restores"
    )
    waiting = assess(FAILOVER, failed, LOST, 1305.0)
    assert waiting.action == "retrying"
    assert "promotion 2 rolled back (backup db: nothing restores); next try in 5s" in waiting.line
    assert assess(FAILOVER, waiting.state, LOST, 1311.0).action == "promote"
    back = assess(FAILOVER, waiting.state, REACHED, 1306.0)
    assert back.action == "steady"
    assert (back.state.attempts, back.state.retry_at, back.state.failure) == (0, None, "")
    assert alarm(FailoverState(), waiting, LOST) == "raise"


def test_the_sighting_that_ends_the_grace_is_timed_to_end_with_it() -> None:
    """A lost primary's sighting takes a connect timeout: the one that can promote starts
    that long before the grace ends, less a margin so that a sighting a little faster
    than the last still ends after it (at once when that is already past), and none is
    timed while nothing counts."""
    counting = assess(FAILOVER, FailoverState(last_contact=1000.0), LOST, 1003.0)
    assert counting.action == "countdown" and counting.state.down_since == 1000.0
    assert next_sighting(FAILOVER, counting, 3.0, 1003.0) == 1000.0 + 300 + 0.5 - 3.0 - 1003.0
    # that sighting, started on time, ends at the grace's end and promotes
    assert assess(FAILOVER, counting.state, LOST, 1300.5).action == "promote"
    # and so does one 0.4 s faster than planned; one that ends before the grace does not
    assert assess(FAILOVER, counting.state, LOST, 1300.1).action == "promote"
    assert assess(FAILOVER, counting.state, LOST, 1299.9).action == "countdown"
    assert next_sighting(FAILOVER, counting, 3.0, 1299.0) == 0.0
    failed = FailoverState(down_since=1000.0, attempts=1, retry_at=1310.0, failure="x")
    retrying = assess(FAILOVER, failed, LOST, 1301.0)
    assert next_sighting(FAILOVER, retrying, 3.0, 1301.0) == 6.5
    steady = assess(FAILOVER, FailoverState(), REACHED, 1000.0)
    assert next_sighting(FAILOVER, steady, 3.0, 1000.0) == float("inf")
