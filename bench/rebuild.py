"""Benchmark: rebuilding a blank primary from its backups (issue 25), against the same
rebuild by hand and against the runbook's RTO table.

Boots 2 hosts: h1 runs the agent, whose metrics database is backed up (confined) to h2
and gets --size-mb of rows; one `reconcile backup now` records a snapshot. Then, --runs
times, alternating:

- **ours**: h1 is destroyed and a blank h1 boots at its address; one `reconcile --yes`
  (its plan restores the newest recorded snapshot, verified, before the agent starts)
  until the agent is active (the apply's health gate);
- **by hand**: the same blank boot; the raw restic CLI restores the same snapshot on the
  controller, its SQLite copy is put at its path over ssh, then `reconcile --yes`.

Each run is timed from the blank host answering SSH, and checked: the agent active with
every row of the snapshot. Prints medians, the ratio ours/by hand (the issue's target:
1.0 or less), and both against the runbook's RTO for the metrics DB (1 hour) and agent
operations (15 minutes). Bounded: --runs runs of each.

    .venv/bin/python -m bench.rebuild [--runs 3] [--size-mb 50]
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backups.restic_repo import sftp_command
from bench.timing import options, timed
from state.load import load_fleet
from state.render_backup import sqlite_copy
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec

PREFIX = "rbd"
PASSWORD = "bench-only-restic-password"
DB = "/var/lib/agent/metrics.db"
POLICY = """\
backups:
  db:
    host: h1
    sqlite: [/var/lib/agent/metrics.db]
    schedule: daily
    retention: {keep_last: 5}
    rpo: 1d
    repository: sftp:root@h2:/srv/restic/h1
    password: env:BENCH_RESTIC_PASSWORD
    init: true
"""
SEED_RTO = {"Metrics DB": 3600.0, "Agent Operations": 900.0}


def fill(lab: fleet_lab.Lab, size_mb: int) -> int:
    """size_mb MiB of 1 KiB rows in the agent's database; the row count."""
    rows = size_mb * 1024
    series = f"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c LIMIT {rows})"
    sql = f"CREATE TABLE filler (x); INSERT INTO filler {series} SELECT randomblob(1024) FROM c;"
    fleet_lab.ssh(lab, "h1", f"sqlite3 {DB} {shlex.quote(sql)}")
    return rows


def blank(lab: fleet_lab.Lab) -> float:
    """Destroy h1, boot it blank; the moment it answers SSH."""
    fleet_lab.boot_blank(lab, "h1")
    return time.perf_counter()


def checked(lab: fleet_lab.Lab, rows: int) -> None:
    active = fleet_lab.ssh(lab, "h1", "systemctl is-active agent", check=False).strip()
    count = fleet_lab.ssh(lab, "h1", f"sqlite3 {DB} 'SELECT COUNT(*) FROM filler'").strip()
    if active != "active" or count != str(rows):
        raise SystemExit(f"rebuild incomplete: agent {active}, {count} of {rows} rows")


def by_hand(lab: fleet_lab.Lab, spec: Path, snapshot: str, env: dict[str, str]) -> None:
    """restic restore on the controller, the copy put in place over ssh (before the
    apply, so the agent never starts without it)."""
    fleet = load_fleet(spec).fleet
    url = f"sftp:root@{fleet.hosts['h2'].address}:/srv/restic/h1"
    sftp = f"sftp.command={sftp_command(fleet.hosts['h2'])}"
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            ["restic", "-r", url, "-o", sftp, "restore", snapshot, "--target", scratch, "-q"],
            check=True,
            env=env,
        )
        copy = Path(scratch) / sqlite_copy("db", DB).lstrip("/")
        fleet_lab.ssh(lab, "h1", f"mkdir -p /var/lib/agent && cat > {DB}", stdin=copy.read_bytes())


def main() -> int:
    args = options(__doc__, runs=3, size_mb=50)
    env = {**os.environ, "BENCH_RESTIC_PASSWORD": PASSWORD, "RESTIC_PASSWORD": PASSWORD}
    cli = [sys.executable, "-m", "reconciler.cli"]
    lab = fleet_lab.up(["h1", "h2"], prefix=PREFIX)
    ours, hand = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec, journal = Path(tmp) / "fleet.yaml", ["--journal", str(Path(tmp) / "j.db")]
            text = lab_spec(lab, POLICY)
            spec.write_text(text.replace("--interval 1", f"--interval 1 --metrics-db {DB}"))
            timed([*cli, str(spec), "--yes", *journal], env)
            rows = fill(lab, args.size_mb)
            done = subprocess.run(
                [*cli, "backup", "now", "db", "--state", str(spec), *journal],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            snapshot = done.stdout.split()[3]
            for _ in range(args.runs):
                started = blank(lab)
                timed([*cli, str(spec), "--yes", *journal], env)
                ours.append(time.perf_counter() - started)
                checked(lab, rows)
                started = blank(lab)
                by_hand(lab, spec, snapshot, env)
                timed([*cli, str(spec), "--yes", *journal], env)
                hand.append(time.perf_counter() - started)
                checked(lab, rows)
    finally:
        fleet_lab.down(PREFIX)
    a, b = statistics.median(ours), statistics.median(hand)
    print(f"rebuild of a blank primary, {args.size_mb} MiB database, medians of {args.runs}:")
    print(f"  one `reconcile --yes` (restores, then converges)   {a:6.2f}s  runs {_list(ours)}")
    print(f"  by hand: restic restore, copy, `reconcile --yes`    {b:6.2f}s  runs {_list(hand)}")
    print(f"  ratio ours/by hand {a / b:.2f} (target 1.0 or less)")
    for what, rto in SEED_RTO.items():
        print(f"  runbook RTO {what}: {rto:g}s; ours is {a / rto:.1%} of it")
    return 0


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
