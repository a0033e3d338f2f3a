"""Fencing on the hosts: the lease, the epoch and the guard that enforces them. Pure text.

The controller keeps a *lease* on the host that runs the failover services: a file with
the current *epoch* and an expiry in the host's own clock, renewed at every probe pass.
The *guard* runs on the primary and the backup without the controller: each failover
service's `ExecStartPre=` asks it whether the lease is current, and its watch loop stops
those services (SIGKILL after a few seconds) once the lease has lapsed. So a primary the
controller can no longer reach stops its own copies before `grace` runs out and the
backup is promoted; and a primary that reboots while failed over does not start them.

The epoch only grows: it goes up at every move. A host keeps the highest epoch it was
told and refuses a lease with a lower one (the fencing token), and backups tag their
snapshots with it, so a restore never picks a stale copy.
"""

from __future__ import annotations

import shlex
from datetime import timedelta

FENCE_DIR = "/var/lib/fleet-reconciler/fence"
LEASE_FILE = f"{FENCE_DIR}/lease"  # "EPOCH EXPIRES" (host epoch seconds)
EPOCH_FILE = f"{FENCE_DIR}/epoch"  # the highest epoch this host was told
GUARD = "/usr/local/lib/fleet-reconciler/fleet-guard"
GUARD_POLL_S = 1
GUARD_KILL_AFTER_S = 3
FENCE_MARGIN = timedelta(seconds=5)
"""How much shorter than `grace` the lease must be: the guard's poll, its SIGKILL wait,
and a second of slack (the lease is timed by the host's clock, the grace by the
controller's; only their rates must agree, and the renewal runs on the host before the
controller records the contact)."""


def default_fence_after(grace: timedelta) -> timedelta:
    """fence_after when the spec leaves it out: 4/5 of grace, and at most grace minus
    FENCE_MARGIN, in whole seconds (at least 1s; a grace too short for any is refused)."""
    seconds = min(grace.total_seconds() * 4 / 5, (grace - FENCE_MARGIN).total_seconds())
    return timedelta(seconds=max(1, int(seconds)))


GUARD_SCRIPT = f'''#!/usr/bin/python3
"""fleet-guard: fences the failover services on this host. Installed by fleet-reconciler.

  fleet-guard check          exit 0 only while this host holds a current lease
  fleet-guard watch UNIT...  every {GUARD_POLL_S}s: when the lease is not current, stop UNITs
                             (SIGKILL after {GUARD_KILL_AFTER_S}s); needs no controller
"""
import subprocess
import sys
import time

LEASE, EPOCH = "{LEASE_FILE}", "{EPOCH_FILE}"


def numbers(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def current():
    lease, epoch = numbers(LEASE), numbers(EPOCH)
    if len(lease) != 2 or len(epoch) != 1:
        return False, "no lease"
    if lease[0] < epoch[0]:
        return False, "lease epoch %d is below this host's epoch %d" % (lease[0], epoch[0])
    left = lease[1] - time.time()
    if left <= 0:
        return False, "lease of epoch %d expired %ds ago" % (lease[0], -left)
    return True, "lease of epoch %d current for %ds" % (lease[0], left)


def active(units):
    is_active = ["systemctl", "is-active", "--quiet"]
    return [u for u in units if subprocess.run([*is_active, u]).returncode == 0]


def watch(units):
    while True:
        ok, why = current()
        running = [] if ok else active(units)
        if running:
            print("fencing: %s; stopping %s" % (why, " ".join(running)), flush=True)
            subprocess.run(["systemctl", "stop", "--no-block", *running])
            deadline = time.monotonic() + {GUARD_KILL_AFTER_S}
            while running and time.monotonic() < deadline:
                time.sleep(0.2)
                running = active(running)
            if running:
                print("fencing: SIGKILL to %s" % " ".join(running), flush=True)
                subprocess.run(["systemctl", "kill", "--signal=SIGKILL", *running])
        time.sleep({GUARD_POLL_S})


def main():
    if sys.argv[1:2] == ["check"]:
        ok, why = current()
        print("fleet-guard: " + why, file=sys.stderr)
        sys.exit(0 if ok else 1)
    if sys.argv[1:2] == ["watch"]:
        watch(sys.argv[2:])
    sys.exit("usage: fleet-guard check | watch UNIT...")


main()
'''

GUARD_CHECK = f"/usr/bin/python3 {GUARD} check"


def guard_watch_command(units: list[str]) -> str:
    return f"/usr/bin/python3 {GUARD} watch {' '.join(units)}"


def lease_command(epoch: int, seconds: int) -> str:
    """Shell run as root on a host: store `epoch` (refusing a lower one) and a lease that
    expires `seconds` from now by the host's clock (0 revokes it). Prints the host's time.
    Both values are integers the controller computed; nothing from the spec is in it."""
    if epoch < 0 or seconds < 0:
        raise ValueError("epoch and seconds are never negative")
    d = shlex.quote(FENCE_DIR)
    return (
        f'set -eu; d={d}; mkdir -p "$d"; exec 9>"$d/lock"; flock 9; '
        'seen="$(cat "$d/epoch" 2>/dev/null || echo 0)"; '
        'case "$seen" in ""|*[!0-9]*) seen=0;; esac; '
        f'if [ {epoch} -lt "$seen" ]; then '
        f'echo "epoch {epoch} is below this host\'s epoch $seen: refused (fencing token)" >&2; '
        "exit 3; fi; "
        f'echo {epoch} > "$d/epoch.new"; mv "$d/epoch.new" "$d/epoch"; '
        'now="$(date +%s)"; '
        f'echo "{epoch} $((now + {seconds}))" > "$d/lease.new"; mv "$d/lease.new" "$d/lease"; '
        'echo "$now"'
    )


def epoch_tag(epoch: int) -> str:
    return f"epoch-{epoch}"


def snapshot_epoch(tags: tuple[str, ...] | list[str]) -> int:
    """The epoch a snapshot was tagged with; 0 for snapshots from before failover."""
    for tag in tags:
        if tag.startswith("epoch-") and tag[6:].isdigit():
            return int(tag[6:])
    return 0


CONTROLLER_TOKEN_FILE = f"{FENCE_DIR}/controller-token"  # the highest leader token seen
CONTROLLER_LOG = f"{FENCE_DIR}/controller.log"  # "HOST-TIME TOKEN NAME" per accepted apply


def controller_token_command(token: int, controller: str) -> str:
    """Shell run as root on a host before an apply changes it: store the leader's fencing
    token, refusing (exit 3) one lower than the highest this host has seen, and log the
    accepted one. `controller` is the controller's name (checked: a plain word)."""
    if token < 0 or not controller.replace("-", "").replace(".", "").isalnum():
        raise ValueError("a token is never negative, a controller name is a plain word")
    d = shlex.quote(FENCE_DIR)
    return (
        f'set -eu; d={d}; mkdir -p "$d"; exec 9>"$d/lock"; flock 9; '
        'seen="$(cat "$d/controller-token" 2>/dev/null || echo 0)"; '
        'case "$seen" in ""|*[!0-9]*) seen=0;; esac; '
        f'if [ {token} -lt "$seen" ]; then '
        f"echo \"controller token {token} is below this host's $seen: refused (a newer "
        'leader has written here)" >&2; exit 3; fi; '
        f'echo {token} > "$d/controller-token.new"; '
        'mv "$d/controller-token.new" "$d/controller-token"; '
        f'echo "$(date +%s.%N) {token} {controller}" >> "$d/controller.log"'
    )
