"""Benchmark: one policy's confined backup against a plain `restic backup` over sftp.

Boots 2 hosts; h1 holds --size-mb of random data, backed up to h2. The policy's unit
goes through its own key, which h2 accepts only for `rclone serve restic --stdio
--append-only` on that one path (issue 25); the peer is the plain restic CLI over sftp
with an unrestricted root key (what every host held before), the same data, the same
pinned host key, into a fresh repository. Runs `reconcile backup now` and measures its
backup unit (systemd's own start and exit times: staging and `restic backup`) and the
whole command; then the restore drill. Prints throughput and the ratio (the issue's
target: 1.1 or less). Bounded: one backup each.

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
# An unrestricted key (the lab's root key, copied to h1), and the same pinned host key
# as the policy's own unit uses.
PLAIN_KEY = "/root/.ssh/plain_sftp_key"
SFTP = (
    f"ssh -i {PLAIN_KEY} -o BatchMode=yes "
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
            key = Path(lab.ssh_key).read_bytes()
            fleet_lab.ssh(lab, "h1", f"umask 077; cat > {PLAIN_KEY}", stdin=key)
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
    print(f"backup of {size} MiB of new data to another host:")
    print(
        f"  the policy's unit, confined (rclone serve restic --append-only)  {unit:6.2f}s  "
        f"{size / unit:6.1f} MiB/s"
    )
    print(
        f"  plain restic backup over sftp, unrestricted key                 {peer:6.2f}s  "
        f"{size / peer:6.1f} MiB/s"
    )
    print(f"  ratio confined/sftp {unit / peer:.2f} (target 1.1 or less)")
    print(
        f"  whole `reconcile backup now` {ours:6.2f}s (adds converging the policy's files, "
        f"listing snapshots and retention), ratio {ours / peer:.2f}"
    )
    print(f"  drill: {drill.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
