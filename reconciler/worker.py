"""Start and talk to a `reconciler.ssh_worker` child process.

Kept free of heavy imports so the CLI can start the worker first: the child's imports
(pyinfra, gevent) then overlap with the parent's own start-up and spec loading.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from reconciler.errors import ObserveError


class WorkerProcess:
    """One started worker, waiting on stdin for its single JSON request."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.ssh_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send `request`, wait for the answer; raise ObserveError if the worker fails."""
        try:
            out, err = self.proc.communicate(json.dumps(request), timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise ObserveError(f"SSH worker gave no answer within {timeout:g}s") from None
        if self.proc.returncode != 0:
            tail = err.strip().splitlines()[-1:] or ["no output"]
            raise ObserveError(f"SSH worker failed (exit {self.proc.returncode}): {tail[0]}")
        answer: dict[str, Any] = json.loads(out)
        return answer

    def close(self) -> None:
        """Stop the worker if it is still running (for example after a spec error)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def run_worker(
    request: dict[str, Any], timeout: float, worker: WorkerProcess | None = None
) -> dict[str, Any]:
    """Run one request in `worker`, or in a freshly started one."""
    worker = worker or WorkerProcess()
    try:
        return worker.call(request, timeout)
    finally:
        worker.close()
