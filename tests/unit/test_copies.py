"""A policy's copies (`copies:`): where one may be, when the plan says to fill it, what a
rebuild restores when the repository is lost, and which snapshots in a copy count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backups.restic_repo import Snapshot
from reconciler.engine.diff import diff
from reconciler.engine.diff_backups import BackupInputs, RestoreSource
from reconciler.flows.verifications import copy_is_due
from reconciler.hosts.observation import BackupState
from reconciler.repositories.copies import record_copies
from reconciler.repositories.rebuild import rebuild_sources
from reconciler.repositories.restorable import copies_taken, rebuild_source
from reconciler.store.journal import Journal
from reconciler.store.ledger import Entry, Ledger
from reconciler.store.schedule import Ran
from state.load import LoadedFleet
from tests.unit.helpers import ideal_observation, load_text
from tests.unit.test_diff_backups import POLICY
from tests.unit.test_spec import BASE, problems

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
COPY = "    copies:\n      offsite: {repository: 'REPO', password: env:Y, rpo: 1d}\n"


def with_copy(repository: str = "local:/srv/copies/kimi") -> str:
    return BASE + POLICY + COPY.replace("REPO", repository)


def test_a_copy_is_on_the_controller_or_apart_from_the_policys_hosts() -> None:
    assert load_text(with_copy()).fleet.backups["db"].copies["offsite"].rpo == timedelta(days=1)
    plain = problems(with_copy("/srv/copies/kimi"))
    assert any("plain path would be on the policy's own host" in p for p in plain), plain
    assert any("local:/path (on the controller)" in p for p in plain), plain
    own = problems(with_copy("sftp:root@kimi:/srv/copy"))
    assert any("backups.db.copies.offsite.repository" in p and "policy's host" in p for p in own)
    same = problems(with_copy("sftp:root@hermes:/srv/copy"))
    assert any("repository's host: the copy would be lost with it" in p for p in same), same
    both_sftp = problems(with_copy("sftp:root@198.18.9.9:/srv/copy"))
    assert any("one sftp command for both sides" in p for p in both_sftp), both_sftp
    nameless = problems(with_copy("sftp:root@nowhere:/srv/copy"))
    assert any("unknown host 'nowhere'" in p for p in nameless), nameless
    again = problems(with_copy("sftp:root@hermes:/srv/restic/kimi"))
    assert any("apart from the policy's and its other copies" in p for p in again), again


def copy_changes(taken: dict[str, datetime | None]) -> list[tuple[str, str, str]]:
    loaded = load_text(with_copy())
    fresh = BackupState(last_snapshot=NOW - timedelta(minutes=5), snapshots=1)
    observed = ideal_observation(loaded).model_copy(
        update={"backups": {"db": fresh}, "observed_at": NOW}
    )
    changes = diff(loaded, observed, {"db": BackupInputs(copies_taken=taken)})
    return [(c.kind, c.subject, c.reason) for c in changes if c.kind == "copy_now"]


def test_the_plan_fills_a_copy_older_than_its_rpo() -> None:
    assert copy_changes({"offsite": None}) == [
        (
            "copy_now",
            "copy offsite of backup db",
            "nothing copied yet, RPO 1d; the controller copies the recorded snapshots to "
            "local:/srv/copies/kimi",
        )
    ]
    stale = copy_changes({"offsite": NOW - timedelta(days=1, hours=2)})
    assert [c[2].split(";")[0] for c in stale] == ["newest copy taken 1d2h ago, RPO 1d"]
    assert copy_changes({"offsite": NOW - timedelta(hours=3)}) == []


def test_a_lost_repository_is_rebuilt_from_the_copy_and_the_plan_says_so() -> None:
    loaded = load_text(with_copy())
    ideal = ideal_observation(loaded)
    hosts = dict(ideal.hosts)
    hosts["kimi"] = hosts["kimi"].model_copy(update={"present": {"/root/db.sqlite": False}})
    lost = BackupState(error="restic snapshots failed: repository does not exist")
    observed = ideal.model_copy(update={"hosts": hosts, "backups": {"db": lost}})
    source = RestoreSource("9499c606" + "0" * 56, NOW - timedelta(hours=5), "offsite")
    inputs = BackupInputs(restore_from=source)
    changes = diff(loaded, observed.model_copy(update={"observed_at": NOW}), {"db": inputs})
    assert [(c.kind, c.reason) for c in changes if c.kind.startswith("data")] == [
        (
            "data_restore",
            "from copy offsite snapshot 9499c606 (taken 5h ago): every data path is missing, "
            "the repository being unreadable; restored and verified before the host's "
            "services start",
        )
    ]


def test_a_repository_gone_with_no_copy_holds_the_blank_host_and_says_how_to_go_on() -> None:
    """The whole fleet rebuilt, the repository with it: the recorded snapshot cannot come
    back. The plan says so before the apply holds the host (never an empty start
    unasked)."""
    loaded = load_text(BASE + POLICY)
    ideal = ideal_observation(loaded)
    hosts = dict(ideal.hosts)
    hosts["kimi"] = hosts["kimi"].model_copy(update={"present": {"/root/db.sqlite": False}})
    gone = BackupState(error="repository does not exist", missing_repository=True)
    observed = ideal.model_copy(update={"hosts": hosts, "backups": {"db": gone}})
    source = RestoreSource("3f9a2b1c" + "0" * 56, NOW - timedelta(hours=5))
    changes = diff(
        loaded,
        observed.model_copy(update={"observed_at": NOW}),
        {"db": BackupInputs(restore_from=source)},
    )
    [restore] = [c for c in changes if c.kind == "data_restore"]
    assert restore.reason.endswith(
        "but the repository is not initialised and no copy holds a recorded snapshot: the "
        "apply holds kimi (restore the repository, or start its services without the data: "
        "--fresh-data)"
    ), restore.reason


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(Journal(tmp_path / "journal.db"))


def snap(sid: str, tree: str, minutes: int, original: str | None = None) -> Snapshot:
    taken = NOW + timedelta(minutes=minutes)
    return Snapshot(sid * 64, taken, "kimi", ("db",), (), original, tree)


def record(loaded: LoadedFleet, ledger: Ledger, source: Snapshot) -> None:
    entry = Entry(source.id, "recorded", "kimi", 0, source.time.timestamp(), 1.0)
    assert ledger.add(loaded.fleet, "db", entry)


def test_only_a_faithful_copy_of_a_recorded_snapshot_counts(ledger: Ledger) -> None:
    """The copy's host (or anyone who reaches it) can write a snapshot naming a recorded
    one as its `original`; it counts only with the very same tree, host and time."""
    loaded = load_text(with_copy())
    source = snap("a", "t1", 0)
    record(loaded, ledger, source)
    unrecorded = snap("b", "t2", 1)  # in the repository, never recorded (forged)
    listed = [
        snap("c", "t1", 0, source.id),  # the controller's copy of `a`
        snap("d", "evil", 0, source.id),  # names `a`, other content
        snap("e", "t2", 1, unrecorded.id),  # a copy of what was never recorded
    ]
    new = record_copies(loaded, "db", "offsite", ledger, [source], listed)
    assert [(e.short_id, e.copy_of) for e in new] == [("cccccccc", source.id)]
    assert [e.snapshot_id[0] for e in ledger.recorded(loaded.fleet, "db", "offsite")] == ["c"]
    assert record_copies(loaded, "db", "offsite", ledger, [source], listed) == []  # once
    taken = copies_taken(loaded, ledger, "db")
    assert taken == {"offsite": source.time}


def test_a_rebuild_tries_the_repository_then_the_newest_copy(ledger: Ledger) -> None:
    loaded = load_text(with_copy())
    assert rebuild_sources(loaded, "db", ledger) == []
    source = snap("a", "t1", 0)
    record(loaded, ledger, source)
    record_copies(loaded, "db", "offsite", ledger, [source], [snap("c", "t1", 0, source.id)])
    order = [(where, e.snapshot_id[0]) for where, e, _ in rebuild_sources(loaded, "db", ledger)]
    assert order == [("", "a"), (" in copy offsite", "c")]
    readable = rebuild_source(loaded, ledger, "db")
    lost = rebuild_source(loaded, ledger, "db", repository_lost=True)
    assert readable is not None and readable.copy is None and readable.snapshot_id[0] == "a"
    assert lost is not None and lost.copy == "offsite" and lost.snapshot_id[0] == "c"


def test_watch_fills_a_copy_every_period_and_retries_a_failed_one_sooner() -> None:
    def last(kind: str, minutes_ago: float) -> Ran:
        return Ran(1000.0 - minutes_ago * 60, ok=kind == "backup_copied")

    week = timedelta(days=7)
    assert copy_is_due(None, week, 1000.0)
    assert not copy_is_due(last("backup_copied", 60), week, 1000.0)
    assert copy_is_due(last("backup_copied", 7 * 24 * 60), week, 1000.0)
    assert not copy_is_due(last("backup_copy_failed", 10), week, 1000.0)
    assert copy_is_due(last("backup_copy_failed", 16), week, 1000.0)


def test_where_a_policy_stands_counts_what_the_repository_still_lists_and_its_copies() -> None:
    from reconciler.hosts.observation import SnapshotClaim
    from reconciler.render.backup_text import standing

    loaded = load_text(with_copy())
    entries = [
        Entry("a" * 64, "recorded", "kimi", 0, 1000.0, 1000.0),
        Entry("b" * 64, "recorded", "kimi", 0, 2000.0, 2000.0),  # forgotten since
    ]
    copies = {"offsite": [Entry("c" * 64, "recorded", "kimi", 0, 1000.0, 1.0, "copy of a")]}
    claim = SnapshotClaim(id="a" * 64, host="kimi", time=NOW)
    listed = BackupState(snapshots=1, claims=(claim,))
    lines = standing(loaded, "db", entries, 1000.0 + 3600, copies, listed)
    assert lines[1:] == [
        "  snapshots: 1 recorded, newest aaaaaaaa (60m ago); a blank host is rebuilt from aaaaaaaa",
        "  copy offsite: local:/srv/copies/kimi, filled by the controller only (its password is "
        "on no host); 1 recorded, newest cccccccc (60m old) (RPO 1440m)",
    ]
    gone = BackupState(error="repository does not exist", missing_repository=True)
    assert standing(loaded, "db", entries, 5000.0, copies, gone)[1] == (
        "  snapshots: the repository is not initialised: its recorded snapshots are gone; "
        "a blank host is rebuilt from copy offsite (cccccccc)"
    )
    unreadable = BackupState(error="connection refused")
    assert standing(loaded, "db", entries, 5000.0, {}, unreadable)[1] == (
        "  snapshots: the repository cannot be read now; a blank host is held (or started "
        "fresh with --fresh-data)"
    )


def test_the_ledger_drops_what_a_full_listing_no_longer_has(ledger: Ledger) -> None:
    """Retention forgot it, or the repository was lost and begun again: a recorded entry
    that is no longer there is dropped (a rebuild never reaches for it); forged ones stay."""
    loaded = load_text(with_copy())
    record(loaded, ledger, snap("a", "t1", 0))
    record(loaded, ledger, snap("b", "t2", 1))
    forged = Entry("f" * 64, "forged", "kimi", 9, 5.0, 5.0, "tagged epoch-9")
    ledger.add(loaded.fleet, "db", forged)
    assert ledger.gone(loaded.fleet, "db", {"b" * 64}) == 1
    assert [e.snapshot_id[0] for e in ledger.entries(loaded.fleet, "db")] == ["b", "f"]
    assert ledger.gone(loaded.fleet, "db", set(), "offsite") == 0  # nothing in the copy
