"""Benchmark: `reconcile --dry-run` against `pyinfra --dry` on the same converged hosts.

Boots 8 real hosts (lab prefix "bench"), converges them by hand, then for 1, 4 and 8
hosts times both tools planning the same desired state (an agent with a binary, a
config file and a unit, running and enabled): `reconcile --dry-run STATE` against
`pyinfra --dry deploys/inventory.py deploys/fleet.py` (the same deploys that apply
runs). Prints medians and the ratio reconcile/pyinfra; the target is 1.0 or less.
Bounded: 3 rounds per size.

Then, on 2 hosts with one backup policy (b1 backs up to b2 over sftp, converged and
backed up once), 7 paired runs of the same comparison: `reconcile --dry-run` with its
journal (a snapshot the repository confirmed is read from the host, not listed again)
and without one (it lists the repository on every plan), against `pyinfra --dry`.

    .venv/bin/python -m bench.dry_run [--rounds 3] [--paired 7]
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.timing import options, timed
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.by_hand import converge_by_hand

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "tests" / "standins" / "agent_standin.py"
SIZES = (1, 4, 8)
CONFIG = "mode = bench\n"
EXEC = (
    "/usr/bin/python3 /usr/local/bin/{service} --name b --log /var/log/{service}.log --interval 5"
)


def write_spec(lab: fleet_lab.Lab, hosts: list[str], path: Path) -> None:
    sha = hashlib.sha256(AGENT.read_bytes()).hexdigest()
    lines = ["version: 1", "hosts:"]
    for name in hosts:
        address = lab.host(name).address
        lines.append(
            f"  {name}: {{address: {address}, ssh_key: {lab.ssh_key}, "
            f"ssh_known_hosts: {lab.known_hosts}}}"
        )
    lines.append("services:")
    for name in hosts:
        exec_start = EXEC.format(service=f"agent-{name}")
        lines += [
            f"  agent-{name}:",
            f"    host: {name}",
            f"    install: {{kind: file, source: {AGENT}, sha256: {sha}, dest: /usr/local/bin/agent-{name}}}",
            f"    unit: {{description: bench agent, exec_start: '{exec_start}'}}",
            f"    config_files: [{{path: /etc/agent/agent-{name}.conf, content: {json.dumps(CONFIG)}, mode: '0640'}}]",
        ]
    path.write_text("\n".join(lines) + "\n")


POLICY = (  # b1 backs up to b2 over sftp
    "backups:\n  data: {host: b1, paths: [/etc/agent], schedule: daily, retention: {keep_last: 5},"
    " rpo: 1d, repository: 'sftp:root@b2:/srv/restic/b1', password: env:BENCH_RESTIC_PASSWORD,"
    " init: true}\n"
)


def with_backup_policy(lab: fleet_lab.Lab, tmp: Path, paired: int) -> None:
    """Dry runs of 2 hosts with one converged, backed-up policy, against pyinfra --dry."""
    spec, journal = tmp / "backup.yaml", tmp / "journal.db"
    write_spec(lab, ["b1", "b2"], spec)
    spec.write_text(spec.read_text() + POLICY)
    env = {**os.environ, "BENCH_RESTIC_PASSWORD": "bench-only-password", "FLEET_STATE": str(spec)}
    bin_dir = Path(sys.executable).parent
    timed([str(bin_dir / "reconcile"), str(spec), "--yes", "--journal", str(journal)], env)
    ours_cmd = [str(bin_dir / "reconcile"), "--dry-run", "--journal", str(journal), str(spec)]
    bare_cmd = [str(bin_dir / "reconcile"), "--dry-run", "--journal", str(tmp / "no.db"), str(spec)]
    peer_cmd = [str(bin_dir / "pyinfra"), "--dry", "deploys/inventory.py", "deploys/fleet.py"]
    ours, bare, peer = [], [], []
    for _ in range(paired):
        (tmp / "no.db").unlink(missing_ok=True)  # a journal that has confirmed nothing
        ours.append(timed(ours_cmd, env))
        bare.append(timed(bare_cmd, env))
        peer.append(timed(peer_cmd, env))
    o, b, p = (statistics.median(x) for x in (ours, bare, peer))
    print(f"\n2 hosts, 1 backup policy (median of {paired} paired runs)")
    print(f"  reconcile --dry-run, snapshot confirmed    {o:6.2f}s  ratio {o / p:.2f}")
    print(f"  reconcile --dry-run, listing the repository {b:5.2f}s  ratio {b / p:.2f}")
    print(f"  pyinfra --dry                              {p:6.2f}s")


def main() -> int:
    args = options(__doc__, rounds=3, paired=7)
    names = [f"b{i}" for i in range(1, max(SIZES) + 1)]
    lab = fleet_lab.up(names, prefix="bench")
    bin_dir = Path(sys.executable).parent
    try:
        with tempfile.TemporaryDirectory() as tmp:
            all_spec = Path(tmp) / "all.yaml"
            write_spec(lab, names, all_spec)
            converge_by_hand(lab, load_fleet(all_spec))
            print(f"{'hosts':>5}  {'reconcile --dry-run':>20}  {'pyinfra --dry':>14}  {'ratio':>6}")
            for size in SIZES:
                hosts = names[:size]
                spec = Path(tmp) / f"s{size}.yaml"
                write_spec(lab, hosts, spec)
                ours_cmd = [str(bin_dir / "reconcile"), "--dry-run", str(spec)]
                # Our own deploys under the pyinfra CLI; --dry without -y runs pyinfra's
                # change detection (with -y it skips it and reads no facts at all).
                peer_cmd = [
                    str(bin_dir / "pyinfra"),
                    "--dry",
                    "deploys/inventory.py",
                    "deploys/fleet.py",
                ]
                env = {**os.environ, "FLEET_STATE": str(spec)}
                ours = statistics.median(timed(ours_cmd) for _ in range(args.rounds))
                peer = statistics.median(timed(peer_cmd, env) for _ in range(args.rounds))
                print(f"{size:>5}  {ours:>19.2f}s  {peer:>13.2f}s  {ours / peer:>6.2f}")
            with_backup_policy(lab, Path(tmp), args.paired)
    finally:
        fleet_lab.down("bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
