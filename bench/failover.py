"""Benchmark: failover of a primary that is cut off, on real hosts, against the grace.

Boots 2 hosts (h1 primary, h2 backup; this machine is the controller and witness) with
the integration tests' failover spec (probes every 2 s) at --grace (20 s; the runbook's
is 300 s) with the lease lapsing at 70 % of it, plus --size-mb of data in the backup
policy. Each run: converge, snapshot, start `reconcile watch`, flap h1's link once
(down 8 s: must not fail over), then cut it and wait for the agent on h2. Prints per
run and as medians, all from the cut:

- detect: the promotion's start (goal: within grace + 1 s; the clock starts at the last
  good answer, which is before the cut);
- fenced: h1's agent stopped by its own lease (the hosts' systemd, on this kernel's
  monotonic clock), and fence margin: h1's stop to h2's start (must be positive);
- restore: listing and restoring the data, with the plain `restic restore` CLI of the
  same snapshot on the controller as the peer (measured in the same run);
- lease and commit, the start and health gate of the staged services, then the whole
  deploy and health gate, as the move's journal timed them;
- served: the agent active on h2, by h2's own systemd (its ActiveEnterTimestamp, on
  the clock the cut was taken on; goal: grace + 5 s);
- data loss: stated (the snapshot's age at the loss) against measured (the SQLite rows
  missing on h2 that h1 wrote before the loss).

Bounded: --runs runs (default 3), each watch at most grace + 180 s.

    .venv/bin/python -m bench.failover [--runs 3] [--size-mb 100] [--grace 20]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.timing import options, timed
from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import (
    agent_rows,
    failover_spec,
    reset_failover_pair,
    start_reconcile,
)

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-only-restic-password"


def reconcile(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"reconcile {args[:2]} failed:\n{done.stdout}\n{done.stderr}")
    return done


def active(lab: fleet_lab.Lab, host: str) -> bool:
    return fleet_lab.ssh(lab, host, "systemctl is-active agent", check=False).strip() == "active"


def monotonic_us(lab: fleet_lab.Lab, host: str, prop: str) -> int:
    return int(fleet_lab.ssh(lab, host, f"systemctl show -P {prop} agent").strip() or 0)


def step_at(journal: Journal, run_id: str, step: str) -> float:
    """When the move's journal recorded `step` (a prefix)."""
    row = journal.db.execute(
        "SELECT at FROM results WHERE run_id = ? AND step LIKE ? ORDER BY at LIMIT 1",
        (run_id, step + "%"),
    ).fetchone()
    if row is None:
        raise SystemExit(f"the failover journaled no step {step!r}")
    return float(row[0])


def one_run(lab: fleet_lab.Lab, tmp: Path, env: dict[str, str], grace: float) -> dict[str, float]:
    reset_failover_pair(lab)
    spec, journal_path = tmp / "fleet.yaml", tmp / "journal.db"
    journal_path.unlink(missing_ok=True)
    fence_after = f"{int(grace * 0.7)}s"
    spec.write_text(
        failover_spec(lab, paths="[/srv/data]", grace=f"{grace:g}s", fence_after=fence_after)
    )
    reconcile("--yes", str(spec), "--journal", str(journal_path), env=env)
    bound = str(int(grace + 180))
    watch = start_reconcile(
        "watch", str(spec), "--journal", str(journal_path), "--max-seconds", bound, env=env
    )
    try:
        time.sleep(4)
        fleet_lab.cut_link(lab, "h1")  # a flap: shorter than the grace
        time.sleep(8)
        fleet_lab.restore_link(lab, "h1")
        time.sleep(12)
        if active(lab, "h2"):
            raise SystemExit("a flap failed over")
        cut, cut_monotonic = time.time(), time.monotonic()
        fleet_lab.cut_link(lab, "h1")
        deadline = time.monotonic() + grace + 130
        while not active(lab, "h2"):
            if time.monotonic() > deadline:
                raise SystemExit(f"no failover within {grace + 130:g} s")
            time.sleep(0.2)
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=120)
        fleet_lab.restore_link(lab, "h1")
    journal = Journal(journal_path)
    event = journal.events(kind="failover")[0]
    run_id, started = journal.db.execute(
        "SELECT id, started FROM runs WHERE mode = 'failover' ORDER BY started DESC LIMIT 1"
    ).fetchone()
    restore = journal.db.execute(
        "SELECT detail FROM results WHERE run_id = ? AND step LIKE 'restore agentdata%'",
        (run_id,),
    ).fetchone()[0]
    restored_at = step_at(journal, run_id, "restore agentdata")
    leased_at = step_at(journal, run_id, "lease (epoch")
    started_at = step_at(journal, run_id, "start and health gate")
    deployed_at = step_at(journal, run_id, "deploy and health gate")
    exited = monotonic_us(lab, "h1", "ActiveExitTimestampMonotonic")
    entered = monotonic_us(lab, "h2", "ActiveEnterTimestampMonotonic")
    lost_at = event.context["lost_at"]
    primary, backup = agent_rows(lab, "h1"), set(agent_rows(lab, "h2"))
    restored = [r for r in primary if r in backup]
    measured = lost_at - datetime.fromisoformat(restored[-1]).timestamp()
    snapshot = event.context["losses"]["agentdata"]["snapshot"]
    with tempfile.TemporaryDirectory() as scratch:
        peer = timed(
            [
                "restic",
                "-r",
                f"sftp:root@{lab.host('h2').address}:/srv/restic/h1",
                "-o",
                f"sftp.command=ssh -i {lab.ssh_key} -o UserKnownHostsFile={lab.known_hosts} "
                f"-o BatchMode=yes root@{lab.host('h2').address} -s sftp",
                "restore",
                snapshot,
                "--target",
                scratch,
            ],
            env={**env, "RESTIC_PASSWORD": PASSWORD},
        )
    return {
        "detect_s": started - cut,
        "detect_after_grace_s": started - cut - grace,
        "fenced_s": exited / 1e6 - cut_monotonic,
        "fence_margin_s": (entered - exited) / 1e6,
        "restore_s": restored_at - started,
        "restic_restore_in_s": float(restore.split(" in ")[-1].rstrip("s")),
        "restic_cli_restore_s": peer,
        "lease_commit_s": leased_at - restored_at,
        "start_gate_s": started_at - leased_at,
        "deploy_gate_s": deployed_at - leased_at,
        "served_s": entered / 1e6 - cut_monotonic,
        "stated_loss_s": float(event.context["losses"]["agentdata"]["seconds"]),
        "measured_loss_s": measured,
        "two_copies": float(entered <= exited),
    }


def main() -> int:
    args = options(__doc__, runs=3, size_mb=100, grace=20.0)
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD}
    lab = fleet_lab.up(["h1", "h2"], prefix="bench")
    try:
        fleet_lab.ssh(
            lab,
            "h1",
            f"mkdir -p /srv/data && head -c {args.size_mb}M /dev/urandom > /srv/data/blob",
        )
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.runs):
                figures = one_run(lab, Path(tmp), env, args.grace)
                results.append(figures)
                print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
        grace = args.grace
        print(f"\nmedians over {args.runs} run(s), {args.size_mb} MiB of data, grace {grace:g}s:")
        for key in results[0]:
            values = [r[key] for r in results]
            print(
                f"  {key:<22} {statistics.median(values):8.2f}  (min {min(values):.2f}, "
                f"max {max(values):.2f})"
            )
        ratio = statistics.median(
            r["restic_restore_in_s"] / r["restic_cli_restore_s"] for r in results
        )
        print(f"  restore vs plain restic restore: {ratio:.2f}x")
        print(f"  two copies at once: {int(sum(r['two_copies'] for r in results))} of {args.runs}")
        detect = statistics.median(r["detect_after_grace_s"] for r in results)
        served = statistics.median(r["served_s"] - grace for r in results)
        print(f"  detection after the grace: {detect:+.1f}s (goal: at most +1 s)")
        print(f"  served after the grace: {served:+.1f}s (goal: at most +5 s)")
    finally:
        fleet_lab.down("bench")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
