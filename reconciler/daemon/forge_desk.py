"""`watch`'s one thread that talks to the forge: pull request reviews and the
`fleet-reconciler/apply` statuses.

A webhook or a pass only queues work here, and returns: Gitea being slow or down never
stalls the loop or the webhook's answer. The queue is bounded and a pull request is
queued once however often it is asked for (its newest head is planned when its turn
comes). Reviews plan with their own SSH worker and their own journal connection. With
several controllers, only the leader reviews and posts (one comment, not one each).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reconciler.errors import ReconcileError, write_traceback
from reconciler.flows.review import (
    APPLY_CONTEXT,
    NotReviewed,
    post_plan_review,
    review_pull,
    set_status,
)
from reconciler.forge.gitea import GiteaError
from reconciler.hosts.client import WarmWorker
from reconciler.store.journal import Journal
from reconciler.store.memory import Memory
from reconciler.untrusted.http import bounded_client
from state.errors import SpecError
from state.spec.source import GitSource

QUEUE_SIZE = 64


@dataclass(frozen=True)
class ApplyStatus:
    commit: str
    state: Literal["success", "failure"]
    description: str


Job = int | ApplyStatus  # a pull request to review, or an apply status to post


class ForgeDesk:
    def __init__(
        self,
        source: Callable[[], GitSource | None],
        journal_path: Path,
        report: Callable[[str], None],
        leading: Callable[[], bool] = lambda: True,
        memory: Callable[[], Memory | None] = lambda: None,
    ) -> None:
        self.source, self.journal_path, self.report = source, journal_path, report
        self.memory = memory  # with etcd, the fleet's: the commit in force a review uses
        self.leading = leading  # with several controllers, the leader alone posts
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self.queued: set[int] = set()
        self.lock = threading.Lock()
        self.posted: dict[str, str] = {}  # commit -> the apply state posted for it
        self.thread = threading.Thread(target=self._run, name="forge", daemon=True)
        self.thread.start()

    def review(self, number: int) -> bool:
        """Queue pull request `number` for review; False when the queue is full."""
        with self.lock:
            if number in self.queued:
                return True
            try:
                self.jobs.put_nowait(number)
            except queue.Full:
                return False
            self.queued.add(number)
            return True

    def applied(self, commit: str, converged: bool, description: str) -> None:
        """Queue the apply status of `commit`, when it changed since the last posted."""
        state: Literal["success", "failure"] = "success" if converged else "failure"
        source = self.source()
        if source is None or not source.reviews or self.posted.get(commit) == state:
            return
        if len(self.posted) > 100:  # the newest commits are the ones that change state
            self.posted.clear()
        self.posted[commit] = state
        try:
            self.jobs.put_nowait(ApplyStatus(commit, state, description))
        except queue.Full:
            self.report(f"forge: apply status of {commit[:12]} dropped (queue full)")

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self.jobs.put_nowait(None)
        self.thread.join(timeout=5)

    def _run(self) -> None:
        worker: WarmWorker | None = None
        journal = Journal(self.journal_path, read_only=True)  # reviews write nothing
        try:
            while (job := self.jobs.get()) is not None:
                source = self.source()
                if isinstance(job, int):
                    with self.lock:  # from here, a new request for it is queued again
                        self.queued.discard(job)
                if source is None or not source.reviews or not self.leading():
                    continue
                try:
                    with bounded_client() as client:
                        if isinstance(job, ApplyStatus):
                            set_status(
                                source, job.commit, APPLY_CONTEXT, job.state, job.description,
                                client,
                            )  # fmt: skip
                            self.report(f"forge: {APPLY_CONTEXT} {job.state} on {job.commit[:12]}")
                            continue
                        worker = worker or WarmWorker()
                        memory = self.memory()
                        review = review_pull(source, job, journal, worker, client, memory)
                        self.report(f"forge: {post_plan_review(source, review, client)}")
                except NotReviewed as exc:
                    self.report(f"forge: not reviewed: {exc}")
                except (GiteaError, ReconcileError, SpecError, OSError) as exc:
                    self.report(f"forge: {type(exc).__name__}: {exc}")
                except Exception as exc:  # the thread outlives one bad review
                    self.report(f"forge: crashed: {exc!r}; traceback in {write_traceback()}")
        finally:
            journal.close()
            if worker is not None:
                worker.close(wait=False)
