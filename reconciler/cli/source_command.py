"""`reconcile pin SHA`, `unpin`, `suspend` and `resume`: steering what `watch` applies.

`pin` holds one commit of the git source as the desired state (a rollback the next
fetch cannot undo) until `unpin`. `suspend` stops applying while observing, probing,
paging and failover go on, until `resume`. Each tells a running `watch` at once
(SIGHUP), and is journaled as an event.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from reconciler.cli import exit_codes
from reconciler.cli.terminal import report
from reconciler.coordination.etcd_memory import memory_for, shared_memory
from reconciler.coordination.guard import holding
from reconciler.coordination.leader import NotLeader
from reconciler.errors import PermanentError
from reconciler.flows.review import Review, post_plan_review, review_pull
from reconciler.forge.source import accept, pin, unpin
from reconciler.hosts.client import WarmWorker
from reconciler.store.journal import Journal
from reconciler.store.memory import Memory
from reconciler.store.suspension import Suspension
from reconciler.untrusted.http import bounded_client
from state.load import load_fleet
from state.spec.source import GitSource


class NoSource(PermanentError, ValueError):
    """The state file names no `source:`: there is no commit to pin."""


def _source(state: str, command: str) -> GitSource:

    source = load_fleet(state).fleet.source
    if source is None:
        raise NoSource(
            f"{command}: {state} names no source: (expected a git source, see the README's "
            "'The desired state from git'; a local state file is steered by editing it)"
        )
    return source


def _tell_watch(journal: Journal, state: str) -> str:
    """SIGHUP the `watch` that runs on `state`, if one does; what was done, to say."""
    found = journal.loop_state(str(Path(state).resolve()))
    pid = int(found[1].get("pid") or 0) if found else 0
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if pid else []
    except OSError:
        command = []
    if b"watch" not in command:  # not running, or the pid is another program's now
        return "no reconcile watch runs on this state file: it takes effect when one starts"
    os.kill(pid, signal.SIGHUP)
    return f"reconcile watch (pid {pid}) was told, and takes it at once"


def _event(journal: Journal, kind: str, message: str, context: dict[str, object]) -> None:
    journal.record_event(time.time(), "P3", kind, None, None, message, context)


def cmd_pin(args: argparse.Namespace) -> int:
    source = _source(args.state, "pin")
    journal = Journal(args.journal)
    got = pin(source, args.journal.parent, args.commit, _shared(args.state))
    signed = f", signed by {got.signer}" if got.signer else ""
    said = (
        f"pinned commit {got.commit[:12]}{signed}: it stays the desired state whatever "
        f"{source.branch} does (now at {got.fetched.commit[:12]}) until `reconcile unpin`"
    )
    _event(journal, "spec_pinned", said, {"commit": got.commit, "signer": got.signer})
    print(said)
    print(_tell_watch(journal, args.state))
    return exit_codes.OK


def cmd_unpin(args: argparse.Namespace) -> int:

    source = _source(args.state, "unpin")
    journal = Journal(args.journal)
    was = unpin(source, args.journal.parent, _shared(args.state))
    if was is None:
        print("nothing was pinned")
        return exit_codes.OK
    said = f"unpinned commit {was[:12]}: the tip of {source.branch} is the desired state again"
    _event(journal, "spec_unpinned", said, {"commit": was})
    print(said)
    print(_tell_watch(journal, args.state))
    return exit_codes.OK


def cmd_accept(args: argparse.Namespace) -> int:
    """`reconcile accept SHA`: take the held tip, which does not descend from the commit
    in force (a force-push), verified and loaded first; journaled."""

    source = _source(args.state, "accept")
    journal = Journal(args.journal)
    got = accept(source, args.journal.parent, args.commit, _shared(args.state))
    signed = f", signed by {got.signer}" if got.signer else ""
    said = (
        f"accepted commit {got.commit[:12]}{signed} as the tip of {source.branch}, though it "
        "does not descend from the commit in force: reconcile watch applies it"
    )
    _event(journal, "spec_accepted", said, {"commit": got.commit, "signer": got.signer})
    print(said)
    print(_tell_watch(journal, args.state))
    return exit_codes.OK


def cmd_suspend(args: argparse.Namespace) -> int:
    journal = Journal(args.journal)
    memory = _memory(args.state, journal)
    suspended = Suspension(memory).suspend(args.reason)
    said = (
        f"applying suspended ({suspended.reason}): reconcile watch goes on observing, probing, "
        "paging and failing over, and plans every pass, but applies nothing until "
        "`reconcile resume`"
    )
    _event(journal, "applying_suspended", said, {"reason": suspended.reason})
    print(said)
    print(f"kept in {memory.where()}")
    return exit_codes.OK


def cmd_resume(args: argparse.Namespace) -> int:
    journal = Journal(args.journal)
    was = Suspension(_memory(args.state, journal)).resume()
    if was is None:
        print("applying was not suspended")
        return exit_codes.OK
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(was.since))
    said = f"applying resumed (suspended since {since}: {was.reason})"
    _event(journal, "applying_resumed", said, {})
    print(said)
    print(_tell_watch(journal, args.state))
    return exit_codes.OK


def _shared(state: str) -> Memory | None:
    """With etcd, the fleet's memory, where a pin, an acceptance and the commit in force
    are every controller's; None: this controller's own mirror holds them."""
    return shared_memory(load_fleet(state).fleet.reconciler.coordination)


def _memory(state: str, journal: Journal) -> Memory:
    """The fleet's memory the state file's `coordination` names (etcd: every controller's;
    else this controller's journal). A state file that does not load is refused: an
    operator's intent must reach the memory the controllers read."""
    return memory_for(load_fleet(state).fleet.reconciler.coordination, journal)


def cmd_review(args: argparse.Namespace) -> int:
    """`reconcile review PR`: plan a pull request read-only, print it as `--dry-run`
    does, and (unless --no-post) put it on the pull request with its status, as `watch`
    does on the webhook. Exits as `--dry-run`: 0 no changes, 2 changes, 3 a host not
    observed, 1 refused."""

    source = _source(args.state, "review")
    if not source.reviews:
        raise NoSource(f"review: {args.state}: source.reviews is not set (where Gitea is)")
    if args.no_post:
        return _review(args, source, post=False)
    coordination = load_fleet(args.state).fleet.reconciler.coordination
    try:  # with etcd, one poster: the leader's watch reviews on the webhook
        with holding(coordination, "review", args.lock_timeout, report):
            return _review(args, source, post=True)
    except NotLeader as exc:
        why = str(exc).removeprefix("not applying: ")
        raise NotLeader(
            f"review #{args.pull}: not posted: {why}; the leader posts reviews itself "
            "(ask it, or see its plan comment); --no-post prints the plan here"
        ) from None


def _review(args: argparse.Namespace, source: GitSource, post: bool) -> int:
    worker: WarmWorker = args.ssh_worker  # started first (reconciler.cli.main)
    journal = Journal(args.journal, read_only=True)  # a review writes nothing
    with bounded_client() as client:
        review = review_pull(source, args.pull, journal, worker, client, _shared(args.state))
        print(
            f"pull request #{review.number} at {review.commit[:12]}: {review.state}, "
            f"{review.description}\n"
        )
        print(review.text, end="")
        if post:
            print(post_plan_review(source, review, client), file=sys.stderr)
    return review_exit_code(review)


def review_exit_code(review: Review) -> int:
    """As `--dry-run`'s: 0 no changes, 2 changes pending, 3 a host not observed,
    1 refused."""
    if review.unobserved:
        return exit_codes.HOSTS_UNOBSERVED
    return {"success": exit_codes.OK, "pending": exit_codes.CHANGES_PENDING}.get(
        review.state, exit_codes.ERROR
    )
