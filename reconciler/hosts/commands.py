"""Every command the controller sends a host over plain ssh (`remote`), each built here
from checked values and each answer parsed here: leases (state.fence), units stopped,
started or restarted, a final backup, a snapshot a host reports, free disk space, a
reachability check, and a tree unpacked from a local tar stream."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from reconciler.hosts.remote import Remote, run_remote
from state.fence import lease_command
from state.layout import backup_path, run_backup_command
from state.spec.hosts import Host
from state.ssh import ssh_argv

LEASE_TIMEOUT_S = 8.0


def set_lease(host: Host, epoch: int, seconds: int) -> Remote:
    """Give `host` a lease of `seconds` in `epoch` (0 seconds revokes it). The host
    refuses an epoch lower than the highest it has seen (exit 3)."""
    return run_remote(host, lease_command(epoch, seconds), LEASE_TIMEOUT_S, connect_timeout=3)


def stop_units(host: Host, units: list[str], timeout: float = 120.0) -> Remote:
    """Stop `units` on `host` and wait for them to be down (none to stop: done)."""
    if not units:
        return Remote(True)
    return run_remote(host, "systemctl stop -- " + " ".join(map(shlex.quote, units)), timeout)


def final_backup(host: Host, policy: str, timeout: float) -> Remote:
    """Run `policy`'s backup unit on `host` and wait; stdout is its `.last` record
    (snapshot ID and time)."""
    command = f"{run_backup_command(policy)} && cat -- {shlex.quote(backup_path(policy, 'last'))}"
    return run_remote(host, command, timeout)


def unit_action(host: Host, verb: str, unit: str, timeout: float = 60.0) -> Remote:
    """`systemctl VERB -- UNIT` on `host` (verb: restart, stop, start)."""
    return run_remote(host, f"systemctl {shlex.quote(verb)} -- {shlex.quote(unit)}", timeout)


def reachable(host: Host, timeout: float = 8.0) -> Remote:
    """Whether `host` answers over SSH at all."""
    return run_remote(host, "true", timeout)


def connects_to(on: Host, address: str, port: int, timeout: float = 15.0) -> Remote:
    """Whether `on` can open a TCP connection to ADDRESS:PORT (its own view of the path)."""
    code = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)"
    command = f"python3 -c {shlex.quote(code)} {shlex.quote(address)} {int(port)}"
    return run_remote(on, command, timeout)


def reported_snapshot(host: Host, policy: str, timeout: float = 30.0) -> str | None:
    """The snapshot ID the policy's last backup on `host` reported (its `.last`), or
    None. Only its first word is taken, and only when it looks like an ID."""
    answer = run_remote(host, f"cat -- {shlex.quote(backup_path(policy, 'last'))}", timeout)
    return first_word_id(answer.stdout) if answer.ok else None


def first_word_id(text: str) -> str | None:
    words = text.split()
    return words[0] if words else None


def free_space(host: Host, path: str, timeout: float = 30.0) -> tuple[int, int] | None:
    """(free, total) bytes of the file system holding `path` on `host`, or None."""
    answer = run_remote(host, f"df -P -B1 {shlex.quote(path)} | tail -1", timeout)
    return parse_df(answer.stdout) if answer.ok else None


def parse_df(line: str) -> tuple[int, int] | None:
    """`df -P -B1`'s data line: (available, total), or None for any other shape."""
    fields = line.split()
    if len(fields) < 4 or not fields[1].isdigit() or not fields[3].isdigit():
        return None
    return int(fields[3]), int(fields[1])


def unpack_tree(host: Host, local: Path, entries: list[str], script: str, timeout: float) -> Remote:
    """Stream `entries` of the local directory `local` as a tar to `host`, where `script`
    (built by the caller from checked values) reads it from stdin."""
    pack = subprocess.Popen(["tar", "-C", str(local), "-cf", "-", *entries], stdout=subprocess.PIPE)
    try:
        unpack = subprocess.run(
            ssh_argv(host, script),
            stdin=pack.stdout,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pack.kill()
        return Remote(False, error=f"no answer in {timeout:g}s")
    finally:
        pack.wait()
    if unpack.returncode != 0 or pack.returncode != 0:
        lines = unpack.stderr.strip()[-300:]
        return Remote(False, unpack.stdout, lines or f"exit {unpack.returncode}")
    return Remote(True, unpack.stdout)
