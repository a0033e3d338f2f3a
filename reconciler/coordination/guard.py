"""What leadership means for a pass: an apply guard that checks leadership and claims
the fencing token on the hosts it is about to change, and the shared state (failover
placement, epoch and timers) kept in the coordination store by the leader."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from reconciler.coordination.choice import leadership_for
from reconciler.coordination.leader import Leadership, NotLeader, controller_name, wait_to_lead
from reconciler.coordination.migration import migrate
from reconciler.coordination.shared_ledger import Pushed, pull_ledgers, push_ledgers
from reconciler.hosts.client import WarmWorker
from reconciler.hosts.fencing import claim_token, refused
from reconciler.store.failover_state import FailoverState, FailoverStore, pair_key
from reconciler.store.journal import Journal
from state.load import LoadedFleet
from state.spec.controller import Coordination


def apply_guard(
    leadership: Leadership, loaded: LoadedFleet, ssh: WarmWorker | None = None
) -> Callable[[list[str]], None]:
    """Called with the hosts a run is about to change, before it changes anything. With
    `ssh`, the token is claimed over its kept connections."""

    def guard(hosts: list[str]) -> None:
        if not leadership.acting():
            raise NotLeader(f"not applying: {leadership.why_not() or 'not the leader'}")
        fleet = loaded.fleet
        # one token per shard (one local controller: none, nothing to fence)
        for token, group in leadership.tokens_for(loaded, hosts).items():
            answers = claim_token({h: fleet.hosts[h] for h in group}, token, leadership.name, ssh)
            lost = sorted(h for h, answer in answers.items() if refused(answer))
            if lost:
                why = f"{', '.join(lost)} refused fencing token {token}: a newer leader wrote there"
                leadership.step_down(why)
                raise NotLeader(f"not applying: {why}")

    return guard


def failover_key(loaded: LoadedFleet) -> str | None:
    failover = loaded.written.failover
    return f"failover/{pair_key(failover)}" if failover is not None else None


def pull_shared(leadership: Leadership, journal: Journal, loaded: LoadedFleet) -> str | None:
    """On becoming leader: take the failover state the last leader left (placement,
    epoch, timers, a move in progress) and the snapshots it recorded into this
    controller's journal; the first time, move this journal's memory into etcd."""
    leadership.follow(loaded)  # a sharded fleet keeps them under their hosts' shards
    said = []
    key, failover = failover_key(loaded), loaded.written.failover
    raw = leadership.shared_get(key, failover.primary) if key and failover else None
    if raw is not None and failover is not None:
        state = FailoverState.model_validate_json(raw)
        FailoverStore(journal, failover).put(state)
        epoch, active = state.placement.epoch, state.placement.active or failover.primary
        said.append(f"failover state from the last leader: {active} active, epoch {epoch}")
    if added := pull_ledgers(leadership, journal, loaded):
        said.append(f"{added} snapshot(s) recorded by the last leader")
    if (moved := migrate(loaded, journal, leadership)) is not None and any(
        (moved.keys, moved.incidents, moved.notifications)
    ):
        said.append(f"this journal's memory (once) {moved}")
    return "; ".join(said) or None


def push_shared(
    leadership: Leadership, journal: Journal, loaded: LoadedFleet, pushed: Pushed | None = None
) -> None:
    """After a pass: the spec in force (its sha), the failover state and the snapshot
    ledger (each policy's, when it changed since `pushed`), written only while this
    controller's token holds."""
    leadership.follow(loaded)
    pushed = {} if pushed is None else pushed
    if leadership.token is None or not _put_changed(leadership, pushed, "spec", loaded.sha256):
        return
    key = failover_key(loaded)
    failover = loaded.written.failover
    if key is not None and failover is not None:
        state = FailoverStore(journal, failover).get().model_dump_json()
        _put_changed(leadership, pushed, key, state, failover.primary)
    push_ledgers(leadership, journal, loaded, pushed)


def _put_changed(
    leadership: Leadership, pushed: Pushed, key: str, value: str, host: str | None = None
) -> bool:
    """Write `key` unless this term already wrote that value (`pushed` is emptied at each
    election, and only the leader writes while its token holds); whether it holds."""
    if pushed.get(key) == value:
        return leadership.acting()
    done = leadership.shared_put(key, value, host)
    if done:
        pushed[key] = value
    return done


@contextlib.contextmanager
def leading(
    loaded: LoadedFleet, journal: Journal, role: str, timeout: float, report: Callable[[str], None]
) -> Iterator[Leadership]:
    """A one-shot command as the leader: wait up to `timeout` for the leadership (or raise
    NotLeader naming the holder), take the shared state, give both back at the end."""
    with holding(loaded.fleet.reconciler.coordination, role, timeout, report) as leadership:
        if pulled := pull_shared(leadership, journal, loaded):
            report(pulled)
        yield leadership
        push_shared(leadership, journal, loaded)


@contextlib.contextmanager
def holding(
    coordination: Coordination, role: str, timeout: float, report: Callable[[str], None]
) -> Iterator[Leadership]:
    """The whole fleet's leadership for a one-shot command (every shard), waiting up to
    `timeout` or raising NotLeader naming the holder; given back at the end. One local
    controller: nothing to hold."""
    leadership = leadership_for(coordination, controller_name(None, role), report, every=True)
    try:
        wait_to_lead(leadership, timeout)
        yield leadership
    finally:
        leadership.close()
