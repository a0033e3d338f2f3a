"""Benchmark: `reconcile --dry-run` against `pyinfra --dry` on the same converged hosts.

Boots 8 real hosts (lab prefix "bench"), converges them by hand, then for 1, 4 and 8
hosts times both tools planning the same desired state (an agent with a binary, a
config file and a unit, running and enabled): `reconcile --dry-run STATE` against
`pyinfra --dry deploys/inventory.py deploys/fleet.py` (the same deploys that apply
runs). Prints medians and the ratio reconcile/pyinfra; the target is 1.0 or less.
Bounded: 3 rounds per size.

    .venv/bin/python -m bench.dry_run [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.timing import timed
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
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
    finally:
        fleet_lab.down("bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
