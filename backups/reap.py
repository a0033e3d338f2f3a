"""Run one command and reap everything it leaves behind: `python -m backups.reap CMD...`.

restic's sftp backend starts `ssh` and exits without waiting for it, so each restic
run used to leave an `ssh` for init to reap (a zombie until it does). This process makes
itself the child subreaper (PR_SET_CHILD_SUBREAPER): what the command orphans comes to
it, and it waits for all of it before it exits with the command's own status. Standard
library only, so it starts fast.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
LINGER_S = 5.0  # how long an orphan may take to exit before it is killed


def reap_all(deadline: float) -> None:
    """Wait for every remaining descendant; kill those still running at `deadline`."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() >= deadline:
                for child in children():
                    os.kill(child, signal.SIGKILL)
            time.sleep(0.01)


def children() -> list[int]:
    """Our remaining child processes (orphans the command left, now ours)."""
    found = []
    for stat in os.scandir("/proc"):
        if not stat.name.isdigit():
            continue
        try:
            with open(f"/proc/{stat.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append(int(stat.name))
    return found


def main(argv: list[str]) -> int:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    code = subprocess.call(argv)
    reap_all(time.monotonic() + LINGER_S)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
