"""A primary cut off, or powered off, fails over; a cut one stays fenced, and fails back with zero loss."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from reconciler.hosts.snapshots import LISTING_INTERVAL
from reconciler.store.journal import Journal
from state.layout import backup_path
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import agent_rows, run_reconcile
from tests.integration.failover.conftest import (
    active,
    finish,
    journal_path,
    monotonic_us,
    placement,
    stop,
    wait_for,
    watch,
    watched_until,
)


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
    # Deployed while the data was restored; after the commit, the start alone.
    assert "h2: stage (all but the start): ok" in output, output
    assert "h2: starting agent (stopped; nothing else changed)" in output, output
    assert "h2: start and health gate: ok" in output, output
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


def test_powered_off_primary_fails_over(lab: fleet_lab.Lab, pair: Path) -> None:
    """Last in the module: h1 stays off."""
    spec = pair
    loop = watch(spec, 100)
    time.sleep(4)
    fleet_lab.power_off(lab, "h1")
    wait_for(lambda: active(lab, "h2", "agent"), 90, "agent active on h2")
    output = stop(loop)
    assert placement(spec) == {"active": "h2", "epoch": 1}, output
