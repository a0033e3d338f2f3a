"""Start and talk to a `reconciler.hosts.worker` child process (the parent side).

Two ways: `WorkerProcess` answers one request and exits (a cold start, fresh SSH
connections); `WarmWorker` is kept for a daemon's or a command's lifetime, so its SSH
connections stay open across passes, and it is restarted after any failure.
Kept free of heavy imports so the CLI can start the worker first: the child's imports
(pyinfra, gevent) then overlap with the parent's own start-up and spec loading.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, TypeVar

from reconciler.errors import ObserveError

if TYPE_CHECKING:  # pydantic is imported once the worker is already starting
    from pydantic import BaseModel

    from reconciler.hosts.protocol import ApplyRequest, ClaimRequest, ObserveRequest, StartRequest

    Request = ObserveRequest | ApplyRequest | StartRequest | ClaimRequest

A = TypeVar("A", bound="BaseModel")
PARENT_PID_ENV = "FLEET_RECONCILER_PARENT_PID"
RECYCLE_AFTER = 5000  # requests; about 3 hours of a daemon probing every 2 s


def _spawn() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler.hosts.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
    )


def _envelope(request: Request) -> str:
    from reconciler.hosts.protocol import RequestEnvelope  # start-up: pydantic, after the fork

    return RequestEnvelope(request=request).model_dump_json() + "\n"


def _parse(out: str, answer: type[A]) -> A:
    from pydantic import ValidationError  # start-up: pydantic, after the worker started

    try:
        return answer.model_validate_json(out)
    except ValidationError as exc:
        raise ObserveError(f"SSH worker answered out of protocol: {exc}") from None


class WorkerProcess:
    """One started worker, waiting on stdin for its single JSON request.

    The worker runs in its own session, so a signal to our process group (Ctrl-C, or a
    service manager stopping us) does not cut a deploy in half: we decide when it
    stops. It dies with us (PR_SET_PDEATHSIG in the worker), so it is never orphaned.
    """

    def __init__(self) -> None:
        self.proc = _spawn()

    def call(self, request: Request, answer: type[A], timeout: float) -> A:
        """Send `request`, wait for the answer; raise ObserveError if the worker fails."""
        try:
            out, err = self.proc.communicate(_envelope(request), timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise ObserveError(f"SSH worker gave no answer within {timeout:g}s") from None
        if self.proc.returncode != 0:
            tail = err.strip().splitlines()[-1:] or ["no output"]
            raise ObserveError(f"SSH worker failed (exit {self.proc.returncode}): {tail[0]}")
        return _parse(out, answer)

    def close(self) -> None:
        """Stop the worker if it is still running (for example after a spec error)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class WarmWorker:
    """One worker kept across requests: its SSH connections stay open between passes.

    Crash-safe by construction: the worker inherits nothing mutable, every request gets
    a fresh pyinfra State there, and a worker that dies, hangs past a request's timeout
    or answers out of protocol is killed and replaced by the next request. After
    `recycle_after` requests it is retired and the next request starts a new one, so
    what pyinfra and the allocator keep growing in a long-lived process stays bounded.
    """

    def __init__(
        self, recycle_after: int = RECYCLE_AFTER, cancel: threading.Event | None = None
    ) -> None:
        self.recycle_after = recycle_after
        self.cancel = cancel  # set (SIGTERM): a read-only request is abandoned at once
        self._held = 0  # inside `held()`: every request is awaited
        self.served = 0  # requests answered by the current worker
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self.starts = 0  # how many processes this link has started (1 while healthy)
        self._start()

    def _start(self) -> None:
        answers: queue.Queue[str | None] = queue.Queue()
        self._proc, self._answers = _spawn(), answers
        self._stderr = collections.deque(maxlen=20)
        self.starts += 1
        self.served = 0
        assert self._proc.stdout is not None and self._proc.stderr is not None
        _drain(self._proc.stdout, answers.put, lambda: answers.put(None))
        _drain(self._proc.stderr, self._stderr.append)

    def call(self, request: Request, answer: type[A], timeout: float) -> A:
        """Send `request`, wait for its answer line; raise ObserveError if the worker fails
        (it is then stopped, and the next call starts a new one)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._stop()
                self._start()
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(_envelope(request))
                self._proc.stdin.flush()
                line = self._answer(timeout, abandonable=request.op == "observe")
            except queue.Empty:
                self._stop()
                raise ObserveError(f"SSH worker gave no answer within {timeout:g}s") from None
            except OSError as exc:  # the worker died before reading the request
                line = None
                self._stderr.append(str(exc))
            if line is None:
                code = self._stop()
                tail = list(self._stderr)[-1:] or ["no output"]
                raise ObserveError(f"SSH worker failed (exit {code}): {tail[0].strip()}")
            try:
                parsed = _parse(line, answer)
            except ObserveError:
                self._stop()
                raise
            self.served += 1
            if self.served >= self.recycle_after:
                self._retire()
            return parsed

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Inside the block no request is abandoned: an apply's health gate and its
        verification are part of the run, which finishes once it has started."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1

    def _answer(self, timeout: float, abandonable: bool) -> str | None:
        """The worker's answer line. An observation (read-only) is abandoned when
        `cancel` is set, and the worker is stopped with it; a request that changes hosts
        is always awaited, since they are mid-change."""
        if self.cancel is None or not abandonable or self._held:
            return self._answers.get(timeout=timeout)
        deadline = time.monotonic() + timeout
        while not self.cancel.is_set():
            try:
                return self._answers.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise
        self._stop()
        raise ObserveError("stopping: the SSH answer was not awaited")

    def _stop(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a broken pipe to a dead worker
                    pipe.close()
        return code

    def close(self, wait: bool = True) -> None:
        """Stop the worker: closing stdin lets it close its connections and exit. Without
        `wait` (a command about to exit) it is left to do so on its own; it dies with us
        at the latest (PR_SET_PDEATHSIG), and the kernel closes what it had open."""
        with self._lock:
            self._retire(wait)

    def _retire(self, wait: bool = True) -> None:
        proc = self._proc
        if proc is not None and self.served == 0:
            self._stop()  # never asked anything (a spec error came first): nothing to close
            return
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.close()
                if not wait:
                    self._proc = None  # left to exit on its own; a later call starts anew
                    return
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._stop()


def _drain(
    pipe: IO[str], put: Callable[[str], None], at_end: Callable[[], None] | None = None
) -> threading.Thread:
    """Read `pipe` line by line on a thread (a full stderr pipe would block the worker);
    `at_end` tells a waiting call that the worker is gone."""

    def read() -> None:
        try:
            for line in pipe:
                put(line)
        except (OSError, ValueError):  # the pipe was closed under us: the worker is stopped
            pass
        if at_end is not None:
            at_end()

    thread = threading.Thread(target=read, name="ssh-worker-reader", daemon=True)
    thread.start()
    return thread


def run_worker(
    request: Request,
    answer: type[A],
    timeout: float,
    worker: WorkerProcess | WarmWorker | None = None,
) -> A:
    """Run one request in `worker` (kept open if warm), or in a freshly started one."""
    if isinstance(worker, WarmWorker):
        return worker.call(request, answer, timeout)
    worker = worker or WorkerProcess()
    try:
        return worker.call(request, answer, timeout)
    finally:
        worker.close()
