"""Backup policies in the plan: RPO drift, init, and the env file never shown. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.engine.diff import diff
from reconciler.engine.diff_backups import BackupInputs, RestoreSource, env_digest
from reconciler.engine.plan import make_plan
from reconciler.hosts.observation import BackupState, FileState
from reconciler.render.outcome_text import render_plan
from tests.unit.helpers import ideal_observation, load_text
from tests.unit.test_spec import BASE

POLICY = """\
backups:
  db:
    host: kimi
    sqlite: [/root/db.sqlite]
    schedule: hourly
    retention: {keep_last: 3}
    rpo: 1h
    repository: sftp:root@hermes:/srv/restic/kimi
    password: env:X
    init: true
"""
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def rpo_changes(state: BackupState | None) -> list[tuple[str, str, str]]:
    loaded = load_text(BASE + POLICY)
    observed = ideal_observation(loaded).model_copy(
        update={"backups": {"db": state} if state else {}, "observed_at": NOW}
    )
    return [
        (c.kind, c.action, c.reason)
        for c in diff(loaded, observed)
        if c.kind in {"backup_now", "repo_init", "repo_missing"}
    ]


def test_rpo_drift_cases() -> None:
    assert rpo_changes(None) == []
    assert rpo_changes(BackupState(last_snapshot=NOW - timedelta(minutes=59), snapshots=1)) == []
    assert rpo_changes(
        BackupState(last_snapshot=NOW - timedelta(hours=2, minutes=10), snapshots=4)
    ) == [("backup_now", "alert", "last snapshot 2h10m ago, RPO 1h")]
    assert rpo_changes(BackupState(snapshots=0)) == [
        ("backup_now", "alert", "no snapshot yet, RPO 1h")
    ]
    assert rpo_changes(BackupState(error="restic snapshots failed: unreachable")) == [
        (
            "backup_now",
            "alert",
            "RPO at risk, repository unreadable: restic snapshots failed: unreachable",
        )
    ]
    assert rpo_changes(BackupState(error="x", missing_repository=True)) == [
        ("repo_init", "create", "not initialised (init: true); for db"),
        ("backup_now", "alert", "no snapshot yet, RPO 1h"),
    ]


def test_a_repository_two_policies_share_is_planned_for_initialisation_once() -> None:
    second = POLICY.replace("  db:\n", "  configs:\n").replace(
        "    sqlite: [/root/db.sqlite]\n", "    paths: [/etc/agent]\n"
    )
    loaded = load_text(BASE + POLICY + second.removeprefix("backups:\n"))
    missing = BackupState(error="x", missing_repository=True)
    observed = ideal_observation(loaded).model_copy(
        update={"backups": {"db": missing, "configs": missing}, "observed_at": NOW}
    )
    plan = make_plan(loaded, observed, diff(loaded, observed))
    inits = [a for a in plan.actions if a.kind == "repo_init"]
    assert [(a.subject, a.reason) for a in inits] == [
        (
            "repository sftp:root@hermes:/srv/restic/kimi",
            "not initialised (init: true); for db, configs",
        )
    ]
    assert render_plan(plan).count("+ repository sftp:root@hermes:/srv/restic/kimi") == 1


def test_env_file_is_compared_by_digest_and_never_shown() -> None:
    loaded = load_text(BASE + POLICY)
    seen = FileState(
        mode="0600",
        owner="root",
        group="root",
        size=10,
        mtime=1,
        sha256=env_digest("RESTIC_PASSWORD=old-secret\n"),
        content="RESTIC_PASSWORD=old-secret\n",
    )
    observed = ideal_observation(loaded)
    kimi = observed.hosts["kimi"]
    files = {**kimi.files, "/etc/fleet-reconciler/backup-db.env": seen}
    observed = observed.model_copy(
        update={"hosts": {**observed.hosts, "kimi": kimi.model_copy(update={"files": files})}}
    )
    inputs = {"db": BackupInputs(env_digest("RESTIC_PASSWORD=new-secret\n"))}
    changes = diff(loaded, observed, inputs)
    [env] = [c for c in changes if c.kind == "backup_env"]
    assert (env.action, env.reason, env.diff) == (
        "update",
        "content differs (secret, not shown)",
        None,
    )
    text = render_plan(make_plan(loaded, observed, changes))
    assert "secret" in text and "old-secret" not in text and "new-secret" not in text


def test_a_confirmed_snapshot_is_reused_only_while_the_host_reports_it_and_it_is_fresh() -> None:
    from reconciler.hosts.observation import HostState
    from reconciler.hosts.snapshots import LISTING_INTERVAL, reuse_confirmation
    from reconciler.store.confirmations import Confirmation
    from state.layout import backup_path

    def host(last: str | None) -> HostState:
        files = {}
        if last is not None:
            files[backup_path("db", "last")] = FileState(
                mode="0644", owner="root", group="root", size=1, mtime=1, sha256="x", content=last
            )
        return HostState(name="kimi", reachable=True, files=files)

    known = Confirmation("3f2a9c0d" + "0" * 56, 1000.0, 4, confirmed=5000.0)
    reused = reuse_confirmation("db", 3600, known, host(f"{known.snapshot_id} 1000\n"), 5100.0)
    assert reused is not None and not reused.listed
    assert reused.snapshots == 4 and reused.last_snapshot is not None
    assert reused.last_snapshot.timestamp() == 1000.0
    assert reuse_confirmation("db", 3600, known, host("3f2a9c0d 1000"), 5100.0) is not None
    # a new snapshot on the host, a stale confirmation, no record, no confirmation: ask
    assert reuse_confirmation("db", 3600, known, host("aaaaaaaa 2000"), 5100.0) is None
    assert reuse_confirmation("db", 3600, known, host(f"{known.snapshot_id} 1000"), 9000.0) is None
    assert reuse_confirmation("db", 3600, known, host(None), 5100.0) is None
    # listed again on a schedule of its own, whatever the host reports (a fenced host's
    # write is found though the holder reports the same snapshot all along)
    late = 5000.0 + LISTING_INTERVAL + 1
    assert reuse_confirmation("db", 3600, known, host(f"{known.snapshot_id} 1000"), late) is None
    assert reuse_confirmation("db", 3600, None, host(f"{known.snapshot_id} 1"), 5100.0) is None


def test_a_repository_is_listed_by_the_last_full_pass_before_its_interval_runs_out() -> None:
    """A fenced host's write, hidden by every report, is judged within LISTING_INTERVAL:
    the pass that lists is the last one before the interval ends, not the first after."""
    from reconciler.hosts.snapshots import LISTING_INTERVAL, listing_due

    assert listing_due(None, 5000.0, 60.0)
    assert not listing_due(5000.0, 5000.0 + 60.0, 60.0)  # the next pass still lists in time
    assert listing_due(5000.0, 5000.0 + LISTING_INTERVAL - 59.0, 60.0)
    assert listing_due(5000.0, 5001.0, LISTING_INTERVAL + 1)  # passes further apart: each


def data_changes(
    present: dict[str, bool], inputs: BackupInputs, policy: str = POLICY
) -> list[tuple[str, str, str, str]]:
    loaded = load_text(BASE + policy)
    ideal = ideal_observation(loaded)
    hosts = dict(ideal.hosts)
    hosts["kimi"] = hosts["kimi"].model_copy(update={"present": present})
    stale = BackupState(last_snapshot=NOW - timedelta(hours=3), snapshots=1)
    observed = ideal.model_copy(
        update={"hosts": hosts, "backups": {"db": stale}, "observed_at": NOW}
    )
    changes = diff(loaded, observed, {"db": inputs})
    return [
        (c.kind, c.action, c.subject, c.reason)
        for c in changes
        if c.kind in {"backup_now", "data_restore", "data_missing"}
    ]


SOURCE = RestoreSource("3f9a2b1c" + "0" * 56, NOW - timedelta(hours=2, minutes=5))


def test_a_blank_host_is_rebuilt_from_the_newest_recorded_snapshot_and_never_backed_up() -> None:
    """Every data path missing: the plan restores (before the services), and the RPO's
    backup is not planned over the missing data (a stale snapshot would say it is due)."""
    assert data_changes({"/root/db.sqlite": False}, BackupInputs(restore_from=SOURCE)) == [
        (
            "data_restore",
            "create",
            "restore db",
            "from snapshot 3f9a2b1c (taken 2h05m ago): every data path is missing; "
            "restored and verified before the host's services start",
        )
    ]
    assert data_changes({"/root/db.sqlite": True}, BackupInputs(restore_from=SOURCE)) == [
        ("backup_now", "alert", "backup db", "last snapshot 3h ago, RPO 1h")
    ]


def test_missing_data_not_rebuilt_is_said_and_backs_up_only_what_is_written_fresh() -> None:
    first = data_changes({"/root/db.sqlite": False}, BackupInputs())  # nothing recorded yet:
    assert first == [  # a first deployment, its services create the data before the backup
        ("backup_now", "alert", "backup db", "last snapshot 3h ago, RPO 1h")
    ]
    fresh = data_changes(
        {"/root/db.sqlite": False}, BackupInputs(restore_from=SOURCE, fresh_data=True)
    )
    started = " its services start without it, and its backups resume once they have written it"
    assert [(c[0], c[3].split(":", 1)[-1]) for c in fresh] == [
        ("data_missing", started),  # the backup runs after the services (the script
        ("backup_now", "last snapshot 3h ago, RPO 1h"),  # refuses a missing path)
    ]
    never = POLICY.replace("    init: true\n", "    init: true\n    restore: never\n")
    cache = data_changes({"/root/db.sqlite": False}, BackupInputs(restore_from=SOURCE), never)
    assert cache[0][3] == f"every data path missing; restore: never:{started}"
    two = POLICY.replace(
        "sqlite: [/root/db.sqlite]", "sqlite: [/root/db.sqlite]\n    paths: [/etc/app]"
    )
    partial = data_changes(
        {"/root/db.sqlite": False, "/etc/app": True}, BackupInputs(restore_from=SOURCE), two
    )
    assert [(c[0], c[3].split(";")[0]) for c in partial] == [
        ("data_missing", "/root/db.sqlite missing while the rest is there")
    ]
