"""Benchmark: one policy's backup through the reconciler against a plain `restic backup`.

Boots 2 hosts; h1 holds --size-mb of random data, backed up over sftp to h2. Runs
`reconcile backup now` and measures its backup unit (systemd's own start and exit
times: staging and `restic backup`; restic unlock only if it meets a stale lock) and the whole command, against
the plain restic CLI run over SSH on h1 with the same data, key and sftp options into a
fresh repository; then the restore drill. Prints throughput and the ratio (target 1.05
or less). Bounded: one backup each.

    .venv/bin/python -m bench.backup [--size-mb 200]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.timing import options, timed
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-only-restic-password"
POLICY = """\
backups:
  data:
    host: h1
    paths: [/srv/data]
    schedule: daily
    retention: {keep_last: 5}
    rpo: 1d
    repository: sftp:root@h2:/srv/restic/reconciler
    password: env:BENCH_RESTIC_PASSWORD
    init: true
"""
# The same key and the same pinned host key as the policy's own unit uses.
SFTP = (
    "ssh -i /etc/fleet-reconciler/backup_ed25519 -o BatchMode=yes "
    "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/fleet-reconciler/backup-data.known_hosts "
    "-s -- root@{address} sftp"
)


def main() -> int:
    args = options(__doc__, size_mb=200)
    env = {**os.environ, "BENCH_RESTIC_PASSWORD": PASSWORD}
    cli = [sys.executable, "-m", "reconciler.cli"]
    lab = fleet_lab.up(["h1", "h2"], prefix="bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec, journal = Path(tmp) / "fleet.yaml", Path(tmp) / "journal.db"
            spec.write_text(lab_spec(lab, POLICY))
            fleet_lab.ssh(
                lab,
                "h1",
                f"mkdir -p /srv/data && head -c {args.size_mb * 2**20} "
                "/dev/urandom > /srv/data/blob.bin && sync",
            )
            timed(
                [*cli, str(spec), "--yes", "--journal", str(journal)], env
            )  # converge, 1st backup
            fleet_lab.ssh(
                lab,
                "h1",
                f"head -c {args.size_mb * 2**20} /dev/urandom > /srv/data/blob.bin && sync",
            )  # new data for both tools
            ours = timed(
                [*cli, "backup", "now", "data", "--state", str(spec), "--journal", str(journal)],
                env,
            )
            times = fleet_lab.ssh(
                lab,
                "h1",
                "systemctl show -p ExecMainStartTimestampMonotonic "
                "-p ExecMainExitTimestampMonotonic --value "
                "fleet-backup-data.service",
            ).split()
            unit = (int(times[1]) - int(times[0])) / 1e6
            sftp = SFTP.format(address=lab.host("h2").address)
            setup = (
                f"export RESTIC_PASSWORD={PASSWORD}; R=sftp:root@{lab.host('h2').address}:"
                f"/srv/restic/plain; O='sftp.command={sftp}'; "
            )
            # The peer's repository already exists and has one backup, like the policy's.
            fleet_lab.ssh(
                lab,
                "h1",
                setup + 'restic -r $R -o "$O" init -q && restic -r $R -o "$O" backup -q /srv/data',
            )
            fleet_lab.ssh(
                lab,
                "h1",
                f"head -c {args.size_mb * 2**20} /dev/urandom > /srv/data/blob.bin && sync",
            )
            started = time.perf_counter()
            fleet_lab.ssh(lab, "h1", setup + 'restic -r $R -o "$O" backup -q /srv/data')
            peer = time.perf_counter() - started
            drill = subprocess.run(
                [*cli, "backup", "drill", "data", "--state", str(spec), "--journal", str(journal)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=env,
            )
    finally:
        fleet_lab.down("bench")
    size = args.size_mb
    print(f"backup of {size} MiB of new data over sftp to another host:")
    print(f"  the policy's backup unit     {unit:6.2f}s  {size / unit:6.1f} MiB/s")
    print(f"  plain restic backup (ssh)    {peer:6.2f}s  {size / peer:6.1f} MiB/s")
    print(f"  ratio unit/restic {unit / peer:.2f} (target 1.05 or less)")
    print(
        f"  whole `reconcile backup now` {ours:6.2f}s (adds converging the policy's files, "
        f"listing snapshots and retention), ratio {ours / peer:.2f}"
    )
    print(f"  drill: {drill.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
