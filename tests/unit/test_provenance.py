"""Provenance: a snapshot counts only when the controller recorded it. Its tags, host name
and time are the writing host's word; the ledger, not the tags, picks what is restored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.engine.snapshot_judgement import Holder, forged_reason, holder, judge
from reconciler.hosts.observation import SnapshotClaim
from reconciler.render.backup_text import standing
from reconciler.store.journal import Journal
from reconciler.store.ledger import Entry, Ledger, repository_of
from state.load import LoadedFleet, load_fleet
from state.placement import Placement

DEMO = Path(__file__).resolve().parents[2] / "state" / "demo.yaml"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def demo(active: str | None = None, epoch: int = 0) -> LoadedFleet:
    return load_fleet(DEMO).placed(Placement(active=active, epoch=epoch))


def claim(sid: str, host: str, epoch: int, minutes: int = 0) -> SnapshotClaim:
    return SnapshotClaim(
        id=sid * 8,
        host=host,
        time=T0 + timedelta(minutes=minutes),
        tags=("metrics-db", f"epoch-{epoch}"),
    )


def who(loaded: LoadedFleet, policy: str = "metrics-db") -> Holder:
    return holder(loaded.written, loaded.fleet, loaded.placement, policy)


def test_only_the_reported_snapshot_of_the_holder_is_recorded() -> None:
    holder_now = who(demo())
    claims = [claim("a", "kimi", 0, 1), claim("b", "kimi", 0, 2)]
    entries = judge(claims, holder_now, "bbbbbbbb", set(), T0)
    assert [(e.snapshot_id[:1], e.verdict, e.epoch) for e in entries] == [("b", "recorded", 0)]


def test_a_future_epoch_is_forged_even_when_reported() -> None:
    """The attack the issue ran: root on the primary plants `epoch-999` and reports it."""
    entries = judge([claim("e", "kimi", 999)], who(demo()), "eeeeeeee", set(), T0)
    assert [e.verdict for e in entries] == ["forged"]
    assert "epoch-999, above the fleet's epoch 0" in entries[0].reason


def test_a_host_that_never_held_the_policy_is_forged() -> None:
    reason = forged_reason(claim("c", "ezra-box", 0), who(demo()))
    assert reason is not None and "never held this policy" in reason


def test_a_fenced_primary_writing_in_the_new_epoch_is_forged() -> None:
    """Failed over to hermes in epoch 1: kimi (fenced, told the epoch) writes again."""
    holder_now = who(demo("hermes", 1))
    assert holder_now.host == "hermes"
    entries = judge(
        [claim("k", "kimi", 1, 9), claim("h", "hermes", 1, 10)], holder_now, "hhhhhhhh", set(), T0
    )
    verdicts = {e.snapshot_id[0]: e.verdict for e in entries}
    assert verdicts == {"k": "forged", "h": "recorded"}


def test_a_fenced_primary_cannot_pass_for_the_holder_without_its_report() -> None:
    """kimi forges `--host hermes` in epoch 1: it fits the claims, but hermes never
    reported it, so it stays unjudged and is never restored."""
    entries = judge([claim("f", "hermes", 1, 11)], who(demo("hermes", 1)), "hhhhhhhh", set(), T0)
    assert entries == []


def test_a_fenced_primary_never_told_the_epoch_is_forged_for_what_it_writes_after_the_move() -> (
    None
):
    """kimi, cut off when the move committed, still tags epoch 0; what it claims to have
    written after the commit is a fenced host's write. Before it, it stays unjudged."""
    moved_at = (T0 + timedelta(minutes=5)).timestamp()
    holder_now = who(load_fleet(DEMO).placed(Placement(active="hermes", epoch=1, since=moved_at)))
    after, before = claim("a", "kimi", 0, 6), claim("b", "kimi", 0, 4)
    entries = judge([after, before], holder_now, None, set(), T0)
    assert [(e.snapshot_id[0], e.verdict) for e in entries] == [("a", "forged")]
    assert "after the move that gave the policy to hermes (epoch 1)" in entries[0].reason
    # the holder's own write after the move is not touched by the rule
    assert forged_reason(claim("h", "hermes", 1, 6), holder_now) is None


def test_the_ledger_keeps_one_repository_whichever_host_holds_the_policy(tmp_path: Path) -> None:
    """The repository is on hermes: seen from kimi it is an sftp URL, from hermes (after
    a failover) a path on its own disk. The ledger's key is the controller's URL, the
    same for both, so what was recorded before a failover is restorable after it."""
    home, moved = demo(), demo("hermes", 1)
    assert home.fleet.backups["metrics-db"].host != moved.fleet.backups["metrics-db"].host
    assert repository_of(home.fleet, "metrics-db") == repository_of(moved.fleet, "metrics-db")
    ledger = Ledger(Journal(tmp_path / "j.db"))
    ledger.add(home.fleet, "metrics-db", Entry("r" * 64, "recorded", "kimi", 0, 1.0, 2.0))
    assert [e.host for e in ledger.recorded(moved.fleet, "metrics-db")] == ["kimi"]


def test_an_older_epoch_of_the_primary_is_neither_recorded_nor_forged() -> None:
    """Snapshots kimi took in epoch 0, never seen before the failover: not restorable, but
    no alarm (they were true when written)."""
    assert judge([claim("o", "kimi", 0)], who(demo("hermes", 1)), "oooooooo", set(), T0) == []


def test_a_short_report_matching_two_snapshots_records_neither() -> None:
    twins = [
        SnapshotClaim(id="abcd1234" + "0" * 56, host="kimi", time=T0, tags=("metrics-db",)),
        SnapshotClaim(id="abcd1234" + "f" * 56, host="kimi", time=T0, tags=("metrics-db",)),
    ]
    assert judge(twins, who(demo()), "abcd1234", set(), T0) == []


def test_judged_snapshots_are_not_judged_again() -> None:
    entries = judge([claim("e", "kimi", 999)], who(demo()), None, {"e" * 8}, T0)
    assert entries == []


def test_the_ledger_keeps_the_first_verdict_and_orders_by_recording(tmp_path: Path) -> None:
    loaded = demo()
    ledger = Ledger(Journal(tmp_path / "journal.db"))
    newer_by_tag = Entry("z" * 8, "recorded", "kimi", 0, T0.timestamp() + 999, 100.0)
    recorded_later = Entry("y" * 8, "recorded", "kimi", 0, T0.timestamp(), 200.0)
    assert ledger.add(loaded.fleet, "metrics-db", newer_by_tag)
    assert ledger.add(loaded.fleet, "metrics-db", recorded_later)
    forged_again = Entry("z" * 8, "forged", "kimi", 999, 0.0, 300.0, "x")
    assert not ledger.add(loaded.fleet, "metrics-db", forged_again)
    assert [e.snapshot_id[0] for e in ledger.recorded(loaded.fleet, "metrics-db")] == ["z", "y"]
    assert ledger.unannounced() == []
    ledger.add(loaded.fleet, "metrics-db", Entry("f" * 8, "forged", "kimi", 999, 0.0, 400.0, "r"))
    assert [(p, e.short_id) for p, e in ledger.unannounced()] == [("metrics-db", "f" * 8)]
    ledger.announced("metrics-db", "f" * 8)
    assert ledger.unannounced() == []


def test_status_says_where_a_policy_stands() -> None:
    loaded = demo()
    entries = [
        Entry("a" * 64, "recorded", "kimi", 0, 1000.0, 1000.0),
        Entry("b" * 64, "forged", "kimi", 999, 1100.0, 1100.0, "tagged epoch-999"),
    ]
    assert standing(loaded, "metrics-db", entries, 1000.0 + 7200) == [
        "  repository: append-only at hermes:/srv/restic/kimi (rclone serve restic, forced "
        "command); credential: key backup-metrics-db, held by kimi only",
        "  snapshots: 1 recorded, newest aaaaaaaa (120m ago); 1 forged (never restored); "
        "a blank host is rebuilt from aaaaaaaa",
    ]
    assert standing(loaded, "configs", [], 0.0)[1] == (
        "  snapshots: none recorded; nothing to rebuild from"
    )


def test_a_held_generation_is_released_only_by_a_newer_drilled_snapshot(tmp_path: Path) -> None:
    loaded = demo()
    ledger = Ledger(Journal(tmp_path / "journal.db"))
    for i, sid in enumerate("abc"):
        ledger.add(loaded.fleet, "metrics-db", Entry(sid * 64, "recorded", "kimi", 0, i, i))
    ledger.hold(loaded.fleet, "metrics-db", "b" * 64, "restored by the rebuild of kimi", 5.0)
    assert ledger.drilled(loaded.fleet, "metrics-db", "a" * 8) == []  # older: still held
    assert ledger.drilled(loaded.fleet, "metrics-db", "b" * 8) == []  # itself: still held
    assert ledger.drilled(loaded.fleet, "metrics-db", "") == []
    assert ledger.held(loaded.fleet, "metrics-db") == {"b" * 64: "restored by the rebuild of kimi"}
    assert ledger.drilled(loaded.fleet, "metrics-db", "c" * 8) == ["b" * 64]
    assert ledger.held(loaded.fleet, "metrics-db") == {}


def test_the_ledger_knows_a_reported_prefix_as_text(tmp_path: Path) -> None:
    loaded = demo()
    ledger = Ledger(Journal(tmp_path / "journal.db"))
    ledger.add(loaded.fleet, "metrics-db", Entry("ab12" * 16, "recorded", "kimi", 0, 0.0, 0.0))
    assert ledger.knows(loaded.fleet, "metrics-db", "ab12ab12")
    assert not ledger.knows(loaded.fleet, "metrics-db", "%")  # a host's text, no pattern
    assert not ledger.knows(loaded.fleet, "configs", "ab12ab12")
