"""Failover on real hosts: h1 is the primary, h2 the backup, the controller is this
machine (the lab's gateway), a third party to both.

Times are the test's short ones (grace 20 s, fence_after 14 s, probes every 2 s). The
order of events is proven from the hosts' own systemd (monotonic timestamps: the hosts
share this kernel's clock), and the data from the SQLite rows on each host.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from reconciler.observe.backups import LISTING_INTERVAL
from reconciler.run.leases import leases_kept
from reconciler.store.failover import FailoverStore
from reconciler.store.journal import Journal
from state.layout import backup_path
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import (
    agent_rows,
    failover_spec,
    reset_failover_pair,
    run_reconcile,
    start_reconcile,
)

PASSWORD = "failover-test-only"


@pytest.fixture(scope="module")
def lab() -> Iterator[fleet_lab.Lab]:
    """Hosts that keep their disk across a reboot (the primary reboots while failed over)."""
    if os.geteuid() != 0:
        pytest.skip("integration tests boot systemd-nspawn hosts and need root")
    prefix = os.environ.get("FLEET_TEST_LAB", "test")
    booted = fleet_lab.up(["h1", "h2"], prefix=prefix, persistent=True)
    try:
        yield booted
    finally:
        fleet_lab.down(prefix)


@pytest.fixture
def pair(lab: fleet_lab.Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A converged pair with a fresh journal (and hosts that forgot earlier epochs)."""
    monkeypatch.setenv("RESTIC_PASSWORD", PASSWORD)
    reset_failover_pair(lab)
    spec = tmp_path / "fleet.yaml"
    spec.write_text(failover_spec(lab))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal_path(spec)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert active(lab, "h1", "agent")
    yield spec
    for host in ("h1", "h2"):
        fleet_lab.restore_link(lab, host)
        fleet_lab.restore_route(lab, host, lab.gateway)


def journal_path(spec: Path) -> Path:
    return spec.parent / "journal.db"


def active(lab: fleet_lab.Lab, host: str, unit: str) -> bool:
    answer = fleet_lab.ssh(lab, host, f"systemctl is-active {unit}", check=False)
    return answer.strip() == "active"


def monotonic_us(lab: fleet_lab.Lab, host: str, unit: str, prop: str) -> int:
    return int(fleet_lab.ssh(lab, host, f"systemctl show -P {prop} {unit}").strip() or 0)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return time.time()
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds:g}s: {what}")


def watched_until(
    loop: subprocess.Popen[str],
    condition: Callable[[], bool],
    seconds: float,
    what: str,
    then: float = 0.0,
) -> str:
    """Wait for `condition` while `loop` runs, let it run `then` seconds more, then stop
    it; its output is in the failure."""
    try:
        wait_for(condition, seconds, what)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{stop(loop)}") from None
    time.sleep(then)
    return stop(loop)


def watch(spec: Path, seconds: float) -> subprocess.Popen[str]:
    return start_reconcile(
        "watch",
        str(spec),
        "--journal",
        str(journal_path(spec)),
        "--max-seconds",
        str(seconds),
        capture=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    """The output of a bounded `watch`, once it has stopped by itself."""
    out, err = process.communicate(timeout=180)
    return out + err


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"the loop did not stop within 120s of SIGTERM:\n{out}{err}") from None
    return out + err


def placement(spec: Path) -> dict[str, object]:
    """Where the services run and in which epoch (not when the move committed)."""
    row = Journal(journal_path(spec)).db.execute("SELECT data FROM failover").fetchone()
    data: dict[str, object] = json.loads(row[0])["placement"]
    return {"active": data.get("active"), "epoch": data.get("epoch")}


def test_cut_primary_fails_over_with_its_data_fenced_then_fails_back_with_zero_loss(
    lab: fleet_lab.Lab, pair: Path
) -> None:
    spec = pair
    recorded_before = fleet_lab.ssh(lab, "h1", f"cat {backup_path('agentdata', 'last')}").split()[0]
    time.sleep(3)  # rows after the snapshot the apply took: the stated loss
    loop = watch(spec, 150)
    time.sleep(5)  # a few probe passes renew the lease
    fleet_lab.cut_link(lab, "h1")
    wait_for(lambda: active(lab, "h2", "agent"), 90, "agent active on h2")
    output = stop(loop)
    assert "(backup agrees)" in output and "move to h2 in" in output, output
    fleet_lab.restore_link(lab, "h1")

    # Fencing: h1's copy stopped (by itself, cut off) before h2's started.
    exited = monotonic_us(lab, "h1", "agent", "ActiveExitTimestampMonotonic")
    entered = monotonic_us(lab, "h2", "agent", "ActiveEnterTimestampMonotonic")
    assert 0 < exited < entered, (exited, entered)
    assert not active(lab, "h1", "agent")
    # And it stays fenced: a start is refused by the guard; so is the start at boot.
    fleet_lab.ssh(lab, "h1", "systemctl start agent", check=False)
    time.sleep(1)
    assert not active(lab, "h1", "agent")
    fleet_lab.reboot(lab, "h1")
    time.sleep(3)  # the unit's start at boot, and a restart or two, are refused
    assert fleet_lab.ssh(lab, "h1", "systemctl is-enabled agent").strip() == "enabled"
    assert not active(lab, "h1", "agent")
    boot_log = fleet_lab.ssh(lab, "h1", "journalctl -b -u agent --no-pager")
    assert "fleet-guard: lease of epoch 0 expired" in boot_log, boot_log

    # Data: h2 holds h1's rows up to the snapshot; the stated loss is what is missing.
    event = Journal(journal_path(spec)).events(kind="failover")[0]
    figures = event.context["losses"]["agentdata"]
    primary_rows, backup_rows = agent_rows(lab, "h1"), set(agent_rows(lab, "h2"))
    restored = [r for r in primary_rows if r in backup_rows]
    assert restored and restored == primary_rows[: len(restored)]  # a prefix: no gaps
    lost_at = event.context["lost_at"]

    def at(row: str) -> float:
        return datetime.fromisoformat(row).timestamp()

    missing_before_loss = [r for r in primary_rows[len(restored) :] if at(r) <= lost_at]
    measured = lost_at - at(restored[-1])
    assert abs(measured - figures["seconds"]) < 1.5, (measured, figures)
    assert missing_before_loss, "rows were written between the snapshot and the loss"
    assert "before the primary was lost; RPO 1h00m: within objective" in event.message

    # Healed: nothing moves back by itself under `failback: manual`.
    calm_output = finish(watch(spec, 12))
    assert "stays fenced" in calm_output, calm_output
    assert active(lab, "h2", "agent") and not active(lab, "h1", "agent")
    assert placement(spec) == {"active": "h2", "epoch": 1}

    # The fenced primary's root runs its backup by hand, tagged the epoch it was told:
    # never recorded, and the loop names it in a P1 within one listing interval, though
    # h2, which holds the policy now, reports its own snapshot all along.
    script, env = backup_path("agentdata", "script"), backup_path("agentdata", "env")
    assert fleet_lab.ssh(lab, "h1", "cat /var/lib/fleet-reconciler/fence/epoch").strip() == "1"
    loop = watch(spec, LISTING_INTERVAL + 60)
    time.sleep(5)  # its first pass has run
    fleet_lab.ssh(lab, "h1", f"set -a && . {env} && set +a && sh {script}")
    written = time.monotonic()
    fenced_write = fleet_lab.ssh(lab, "h1", f"cat {backup_path('agentdata', 'last')}").split()[0]
    watched_until(
        loop,
        lambda: bool(Journal(journal_path(spec)).events(kind="backup_forged")),
        LISTING_INTERVAL + 15,  # a full pass's own time on top of the interval
        "a P1 names the fenced primary's snapshot",
    )
    print(f"the fenced primary's snapshot was judged forged {time.monotonic() - written:.0f}s on")
    (forged,) = Journal(journal_path(spec)).events(kind="backup_forged")
    assert forged.severity == "P1" and fenced_write[:8] in forged.message, forged
    assert "claims host 'h1' in epoch 1, when h2 holds the policy" in forged.message

    # Failback: zero loss, the backup left without the service.
    done = run_reconcile(
        "failback", "--state", str(spec), "--journal", str(journal_path(spec)), "--yes"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written_on_backup = agent_rows(lab, "h2")
    assert active(lab, "h1", "agent")
    home_rows = set(agent_rows(lab, "h1"))
    assert set(written_on_backup) <= home_rows, "every write made on the backup came home"
    assert (
        fleet_lab.ssh(lab, "h2", "test -e /etc/systemd/system/agent.service; echo $?").strip()
        == "1"
    )
    assert placement(spec) == {"active": None, "epoch": 2}
    (back,) = Journal(journal_path(spec)).events(kind="failback")
    assert not fenced_write.startswith(back.context["restored"]["agentdata"]), back.context

    # The ledger followed the data through both moves: the snapshot recorded before the
    # failover is still recorded (restorable), whichever host held the policy since.
    journal = ("--state", str(spec), "--journal", str(journal_path(spec)))
    listed = run_reconcile("backup", "list", "agentdata", *journal)
    (row,) = [line for line in listed.stdout.splitlines() if recorded_before[:8] in line]
    assert row.split()[-1] == "recorded", listed.stdout
    again = run_reconcile(
        "backup", "restore", "agentdata", "--snapshot", recorded_before[:8],
        "--to", "h1:/tmp/before-failover", "--yes", *journal,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"of snapshot {recorded_before[:8]}" in again.stdout


def test_partial_partitions_and_flapping_move_nothing(lab: fleet_lab.Lab, pair: Path) -> None:
    spec = pair
    # The controller loses h1, but h2 still reaches it: no failover, and the plan says why.
    fleet_lab.drop_route(lab, "h1", lab.gateway)
    output = finish(watch(spec, 34))
    fleet_lab.restore_route(lab, "h1", lab.gateway)
    assert "but h2 can: no failover" in output, output
    assert not active(lab, "h2", "agent")

    # The controller loses h2 as well as h1: it may be the one cut off; nothing moves.
    fleet_lab.drop_route(lab, "h2", lab.gateway)
    fleet_lab.cut_link(lab, "h1")
    output = finish(watch(spec, 34))
    fleet_lab.restore_link(lab, "h1")
    fleet_lab.restore_route(lab, "h2", lab.gateway)
    assert "and so is the backup h2" in output, output
    assert not active(lab, "h2", "agent")

    # Flapping: down 10 s in every 30 s, with a 20 s grace, never fails over.
    loop = watch(spec, 75)
    for _ in range(2):
        time.sleep(20)
        fleet_lab.cut_link(lab, "h1")
        time.sleep(10)
        fleet_lab.restore_link(lab, "h1")
    output = finish(loop)
    assert not active(lab, "h2", "agent"), output
    assert placement(spec)["active"] is None
    assert not Journal(journal_path(spec)).events(kind="failover")


def test_backup_older_than_the_rpo_holds_the_failover_until_accepted(
    lab: fleet_lab.Lab, pair: Path
) -> None:
    spec = pair
    spec.write_text(failover_spec(lab, rpo="15s", interval="10m"))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal_path(spec)))
    assert done.returncode == 0, done.stdout + done.stderr
    loop = watch(spec, 80)
    time.sleep(20)  # the newest snapshot is now older than the 15 s RPO
    fleet_lab.cut_link(lab, "h1")
    journal = Journal(journal_path(spec))
    wait_for(lambda: bool(journal.events(kind="failover_held")), 50, "a held failover")
    output = stop(loop)
    held = journal.events(kind="failover_held")[0]
    assert held.severity == "P0" and "OVER objective" in held.message, output
    assert not active(lab, "h2", "agent")
    done = run_reconcile(
        "failover",
        "--accept-data-loss",
        "--state",
        str(spec),
        "--journal",
        str(journal_path(spec)),
        "--yes",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert active(lab, "h2", "agent")
    fleet_lab.restore_link(lab, "h1")


@pytest.mark.parametrize(
    "point",
    [
        "switchover:stopped",
        "switchover:backed-up",
        "switchover:revoked",
        "switchover:restored",
        "switchover:committed",
    ],
)
def test_a_move_killed_at_any_step_ends_in_one_placement(
    lab: fleet_lab.Lab, pair: Path, point: str
) -> None:
    """SIGKILL the controller at `point` of a planned switchover, then run it again."""
    spec = pair
    journal = str(journal_path(spec))
    killed = run_reconcile(
        "failover",
        "--to",
        "h2",
        "--state",
        str(spec),
        "--journal",
        journal,
        "--yes",
        env={**os.environ, "FLEET_RECONCILER_FAILPOINT": point},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    done = run_reconcile("--yes", str(spec), "--journal", journal)
    assert done.returncode == 0, done.stdout + done.stderr
    where = str(placement(spec)["active"] or "h1")
    other = "h1" if where == "h2" else "h2"
    assert active(lab, where, "agent") and not active(lab, other, "agent"), (point, where)
    expected = "h2" if point == "switchover:committed" else "h1"
    assert where == expected


@pytest.mark.parametrize("point", ["failover:restored", "failover:committed"])
def test_a_promotion_killed_midway_ends_on_the_backup(
    lab: fleet_lab.Lab, pair: Path, point: str
) -> None:
    """SIGKILL `reconcile watch` inside a promotion, then start it again: before the
    placement is recorded the move is rolled back and, the primary still gone, promoted
    again; after, it is finished. Either way the agent ends on h2 alone."""
    spec = pair
    crashing = start_reconcile(
        "watch",
        str(spec),
        "--journal",
        str(journal_path(spec)),
        "--max-seconds",
        "120",
        env={**os.environ, "FLEET_RECONCILER_FAILPOINT": point},
    )
    time.sleep(4)
    fleet_lab.cut_link(lab, "h1")
    assert crashing.wait(timeout=100) == -signal.SIGKILL
    output = finish(watch(spec, 40))
    fleet_lab.restore_link(lab, "h1")
    assert active(lab, "h2", "agent") and not active(lab, "h1", "agent"), output
    assert placement(spec)["active"] == "h2"
    assert Journal(journal_path(spec)).events(kind="failover"), output


def test_a_drill_game_day_switches_over_and_back_measured(pair: Path, lab: fleet_lab.Lab) -> None:
    journal = str(journal_path(pair))
    saved = run_reconcile("backup", "now", "agentdata", "--state", str(pair), "--journal", journal)
    assert saved.returncode == 0, saved.stdout + saved.stderr
    drilled = run_reconcile(
        "drill", str(pair), "--failover", "--output", "json", "--journal", journal
    )
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    steps = json.loads(drilled.stdout)
    assert [(s["kind"], s["subject"]) for s in steps] == [
        ("restart", "agent"),
        ("recovery", "agent"),
        ("restore", "agentdata (data age)"),
        ("restore", "agentdata"),
        ("channel", "controller -> h2"),
        ("channel", "h1 -> h2"),
        ("failover", "agent -> h2"),
        ("failover", "agent -> h1"),
    ], steps
    assert all(s["verdict"] == "pass" for s in steps), steps
    over, back = steps[-2:]
    assert 0 < over["measured_s"] <= over["objective_s"] and back["t_fault"] > over["t_healthy"]
    assert active(lab, "h1", "agent") and not active(lab, "h2", "agent")


def test_a_command_after_the_primary_fenced_itself_renews_its_lease_first(
    pair: Path, lab: fleet_lab.Lab
) -> None:
    """With no `reconcile watch`, h1 stops its agent fence_after (14 s) after the last
    renewal, and the unit refuses to start without a lease. A command's lease keeper
    renews before the command's work starts (CI saw a drill's restart lose that race),
    and the drill's restart then passes."""
    wait_for(lambda: not active(lab, "h1", "agent"), 60, "h1 fencing its agent")
    loaded = load_fleet(pair)
    assert loaded.written.failover is not None
    entered = time.time()
    with leases_kept(lambda: loaded, journal_path(pair)):
        journal = Journal(journal_path(pair))
        renewed = FailoverStore(journal, loaded.written.failover).last_renewal("h1")
        journal.close()
    assert renewed is not None and renewed >= entered
    drilled = run_reconcile(
        "drill", str(pair), "--output", "json", "--journal", str(journal_path(pair))
    )
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    restart = json.loads(drilled.stdout)[0]
    assert (restart["kind"], restart["verdict"]) == ("restart", "pass"), restart
    assert active(lab, "h1", "agent")


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


def test_powered_off_primary_fails_over(lab: fleet_lab.Lab, pair: Path) -> None:
    """Last in the module: h1 stays off."""
    spec = pair
    loop = watch(spec, 100)
    time.sleep(4)
    fleet_lab.power_off(lab, "h1")
    wait_for(lambda: active(lab, "h2", "agent"), 90, "agent active on h2")
    output = stop(loop)
    assert placement(spec) == {"active": "h2", "epoch": 1}, output
