"""One shell command on a host over plain ssh, bounded in time: for the small, frequent
steps that need no pyinfra (lease renewals, the backup's second opinion, stopping units).
The command is built by the reconciler from checked values, never taken from the spec."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from state.spec.hosts import Host
from state.ssh import ssh_argv


@dataclass(frozen=True)
class Remote:
    ok: bool
    stdout: str = ""
    error: str = ""


def run_remote(host: Host, command: str, timeout: float, connect_timeout: int = 5) -> Remote:
    """Run `command` on `host`; never raises for an unreachable host or a failed command."""
    argv = ssh_argv(host, command)
    argv[1:1] = ["-o", f"ConnectTimeout={connect_timeout}"]  # ssh takes an option's first value
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Remote(False, error=f"no answer in {timeout:g}s")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return Remote(False, done.stdout, lines[-1] if lines else f"exit {done.returncode}")
    return Remote(True, done.stdout)
