"""Start and talk to a `reconciler.ssh.worker` child process (the parent side).

Kept free of heavy imports so the CLI can start the worker first: the child's imports
(pyinfra, gevent) then overlap with the parent's own start-up and spec loading.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, TypeVar

from reconciler.errors import ObserveError

if TYPE_CHECKING:  # pydantic is imported once the worker is already starting
    from pydantic import BaseModel

    from reconciler.ssh.protocol import ApplyRequest, ObserveRequest

A = TypeVar("A", bound="BaseModel")
PARENT_PID_ENV = "FLEET_RECONCILER_PARENT_PID"


class WorkerProcess:
    """One started worker, waiting on stdin for its single JSON request.

    The worker runs in its own session, so a signal to our process group (Ctrl-C, or a
    service manager stopping us) does not cut a deploy in half: we decide when it
    stops. It dies with us (PR_SET_PDEATHSIG in the worker), so it is never orphaned.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.ssh.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
        )

    def call(self, request: ObserveRequest | ApplyRequest, answer: type[A], timeout: float) -> A:
        """Send `request`, wait for the answer; raise ObserveError if the worker fails."""
        from pydantic import ValidationError

        from reconciler.ssh.protocol import RequestEnvelope

        envelope = RequestEnvelope(request=request).model_dump_json()
        try:
            out, err = self.proc.communicate(envelope, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise ObserveError(f"SSH worker gave no answer within {timeout:g}s") from None
        if self.proc.returncode != 0:
            tail = err.strip().splitlines()[-1:] or ["no output"]
            raise ObserveError(f"SSH worker failed (exit {self.proc.returncode}): {tail[0]}")
        try:
            return answer.model_validate_json(out)
        except ValidationError as exc:
            raise ObserveError(f"SSH worker answered out of protocol: {exc}") from None

    def close(self) -> None:
        """Stop the worker if it is still running (for example after a spec error)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def run_worker(
    request: ObserveRequest | ApplyRequest,
    answer: type[A],
    timeout: float,
    worker: WorkerProcess | None = None,
) -> A:
    """Run one request in `worker`, or in a freshly started one."""
    worker = worker or WorkerProcess()
    try:
        return worker.call(request, answer, timeout)
    finally:
        worker.close()
