"""What a promotion restores when the newest snapshot, the repository or its lock is not what it should be."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reconciler.store.journal import Journal
from state.layout import backup_path
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import agent_rows, failover_spec, run_reconcile
from tests.integration.failover.conftest import (
    active,
    journal_path,
    placement,
    stop,
    wait_for,
    watch,
    watched_until,
)


def test_a_snapshot_with_a_fifo_is_passed_over_with_a_p1(lab: fleet_lab.Lab, pair: Path) -> None:
    """Before: a FIFO in the newest snapshot's sqlite/ raised an uncaught OperationalError
    at the restore; the watch exited with "internal error", stuck at the restore step.
    Then: the move was rolled back and tried again every pass, never serving. Now the
    promotion restores the next recorded snapshot (the one the converge took), says so,
    and raises the P1 on the FIFO's; the hosts' epoch counts one move."""
    spec = pair
    script, env = backup_path("agentdata", "script"), backup_path("agentdata", "env")
    fleet_lab.ssh(  # the primary's own backup, with a FIFO where a copy belongs
        lab,
        "h1",
        f"sed 's|^if restic backup|mkfifo \"$stage/sqlite/fifo.db\"\\nif restic backup|' "
        f"{script} > /tmp/planted.sh && set -a && . {env} && set +a && sh /tmp/planted.sh",
    )
    loop = watch(spec, 90)
    time.sleep(4)
    fleet_lab.cut_link(lab, "h1")
    journal = Journal(journal_path(spec))
    wait_for(lambda: bool(journal.events(kind="failover")), 75, "a failover")
    output = stop(loop)
    assert "internal error" not in output and "Traceback" not in output, output
    (failed, *_) = journal.events(kind="drill_failed")
    assert failed.severity == "P1" and failed.service == "backup:agentdata", failed
    assert "sqlite/fifo.db is a FIFO: refused" in failed.message
    [moved] = journal.events(kind="failover")
    assert "did not restore" in moved.message and "sqlite/fifo.db is a FIFO" in moved.message
    assert not journal.events(kind="failover_aborted")
    assert placement(spec) == {"active": "h2", "epoch": 1}, output
    assert active(lab, "h2", "agent")
    fleet_lab.restore_link(lab, "h1")


def test_a_lock_the_primary_leaves_does_not_stop_its_failover(
    lab: fleet_lab.Lab, pair: Path
) -> None:
    """Root on the primary, with its own backup key, takes the repository's exclusive
    lock and is killed with -9 (restic treats the lock as live for 30 minutes); then its
    link is cut. The controller lists and restores without a lock: the backup serves
    with the snapshot's rows, the hosts' epoch went up by one, and a P1 names the lock."""
    spec = pair
    rows_before = agent_rows(lab, "h1")
    script, env = backup_path("agentdata", "script"), backup_path("agentdata", "env")
    # The host's own transport to its repository (its confined key), as its script has it.
    transport = f'$(grep -o "rclone.program=[^\']*" {script} | head -1)'
    fleet_lab.ssh(
        lab,
        "h1",
        f"set -a && . {env} && set +a && ((sleep 60 | setsid restic --option "
        f'"{transport}" key passwd --new-password-file /dev/stdin) </dev/null >/dev/null '
        "2>&1 &) && sleep 5 && pkill -9 -x restic; pkill -x sleep; true",
    )
    repository = "/srv/restic/h1/locks"
    locks = fleet_lab.ssh(lab, "h2", f"ls {repository} | wc -l").strip()
    assert locks != "0", "the primary left no lock"
    loop = watch(spec, 90)
    time.sleep(4)
    fleet_lab.cut_link(lab, "h1")
    output = watched_until(loop, lambda: active(lab, "h2", "agent"), 75, "agent active on h2")
    assert placement(spec) == {"active": "h2", "epoch": 1}, output
    restored = agent_rows(lab, "h2")
    assert restored and restored[0] == rows_before[0], (rows_before[:3], restored[:3])
    assert fleet_lab.ssh(lab, "h2", f"ls {repository} | wc -l").strip() == locks  # still there
    (named,) = Journal(journal_path(spec)).events(kind="backup_locked")
    assert named.severity == "P1" and "claimed by host 'h1'" in named.message, named
    fleet_lab.restore_link(lab, "h1")


def test_a_lost_repository_fails_over_from_the_copy_and_says_so(
    lab: fleet_lab.Lab, pair: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy keeps a copy on the controller's disk (its own password, no host holds
    it). The primary is cut and its repository deleted on h2 meanwhile: the promotion
    restores the copy's recorded snapshot, and the P0 says the data came from the copy."""
    spec = pair
    monkeypatch.setenv("FLEET_TEST_COPY_PASSWORD", "test-only-copy-password-5d21")
    copy = f"{{repository: 'local:{spec.parent / 'offsite'}', "
    copy += "password: env:FLEET_TEST_COPY_PASSWORD, rpo: 1d, init: true}"
    spec.write_text(
        spec.read_text().replace(
            "    init: true\n", f"    init: true\n    copies:\n      offsite: {copy}\n"
        )
    )
    filled = run_reconcile("--yes", str(spec), "--journal", str(journal_path(spec)))
    assert filled.returncode == 0, filled.stdout + filled.stderr
    assert "backup agentdata: copy offsite: 1 new" in filled.stderr, filled.stderr
    rows_before = agent_rows(lab, "h1")
    loop = watch(spec, 120)
    time.sleep(4)
    fleet_lab.cut_link(lab, "h1")
    fleet_lab.ssh(lab, "h2", "rm -rf /srv/restic/h1")  # the repository, lost with it
    output = watched_until(loop, lambda: active(lab, "h2", "agent"), 90, "agent active on h2")
    (event,) = Journal(journal_path(spec)).events(kind="failover")
    assert "of copy offsite" in event.message, (event.message, output)
    restored = agent_rows(lab, "h2")
    assert restored and restored[0] == rows_before[0], (rows_before[:3], restored[:3])
    assert placement(spec) == {"active": "h2", "epoch": 1}
    fleet_lab.restore_link(lab, "h1")


def test_when_nothing_restores_a_promotion_backs_off_paged_once_until_data_loss_allows_it(
    lab: fleet_lab.Lab, pair: Path
) -> None:
    """The repository's packs are lost (its snapshots still list), so no recorded
    snapshot restores. Under `data_loss: hold` each promotion is rolled back: the epoch
    stays 0, one P0 pages, the attempts back off. Under `data_loss: allow` the backup
    serves with no data, and the P0 says all data was lost."""
    spec = pair
    fleet_lab.ssh(lab, "h2", "rm -f /srv/restic/h1/data/*/*")
    loop = watch(spec, 75)
    time.sleep(4)
    fleet_lab.cut_link(lab, "h1")
    journal = Journal(journal_path(spec))

    def attempts() -> int:
        row = journal.db.execute("SELECT data FROM failover").fetchone()
        return int(json.loads(row[0]).get("attempts", 0))

    # the second attempt puts off the third by 10 s: a pass meanwhile says when
    output = watched_until(loop, lambda: attempts() >= 2, 60, "two rolled-back promotions", 8)
    assert placement(spec) == {"active": None, "epoch": 0}, output
    assert not active(lab, "h2", "agent")
    [aborted] = journal.events(kind="failover_aborted")  # paged once, not per attempt
    assert "nothing restores" in aborted.message and "data_loss: hold" in aborted.message
    assert "retried with backoff" in aborted.message
    told = fleet_lab.ssh(lab, "h2", "cat /var/lib/fleet-reconciler/fence/epoch; true").strip()
    assert told in ("", "0"), told  # no attempt raised the hosts' epoch
    assert "next try in" in output, output

    spec.write_text(failover_spec(lab, data_loss="allow"))
    loop = watch(spec, 75)
    output = watched_until(
        loop, lambda: active(lab, "h2", "agent"), 70, "agent active on h2 without data"
    )
    assert placement(spec) == {"active": "h2", "epoch": 1}, output
    [moved] = journal.events(kind="failover")
    assert "agentdata: nothing restored" in moved.message and "all data lost" in moved.message
    fleet_lab.restore_link(lab, "h1")
