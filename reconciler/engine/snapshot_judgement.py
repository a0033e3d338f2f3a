"""Judging a repository's snapshots: which to record, which are forged. Pure.

A snapshot's host name, tags and time are whatever the host that wrote it said, and a
host holds the credential to write there. So a snapshot is recorded only when all of:
- the host that holds the policy now reports it (its `backup-POLICY.last`, read over
  SSH from that host, or the output of a backup the controller ran there);
- the repository lists it under the policy's tag;
- it claims that host and an epoch no higher than the fleet's.

A snapshot is forged, and raises a P1 `backup_forged` once, when its claims cannot be
true whoever reported it:
- an epoch above the fleet's (`epoch-999`): no host was ever told that epoch;
- a host that never held the policy (another host's name);
- in the current epoch, a host other than the one holding the policy: a fenced primary
  writing after the move, under its own name or not;
- a host other than the one holding the policy, claiming a time after the move to the
  current placement committed: a fenced host that was never told the new epoch (its
  tags carry the old one) writing after the move. A host that backdates its write is
  left unjudged (never restored), as any unreported snapshot.
Anything else not reported (a backup a host's timer took between two looks) is left
unjudged: it is never restored, and a later report records that snapshot's successor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconciler.hosts.observation import SnapshotClaim
from reconciler.store.ledger import Entry
from state.fence import snapshot_epoch
from state.placement import Placement, data_policies
from state.spec.fleet import Fleet


@dataclass(frozen=True)
class Holder:
    """Who may write a policy's snapshots: `host` holds it now (in epoch `epoch`), and
    `allowed` are every host that may ever have held it; `since`, when the placement in
    force committed (0: never moved)."""

    host: str
    epoch: int
    allowed: frozenset[str]
    since: float = 0.0


def holder(written: Fleet, placed: Fleet, placement: Placement, policy: str) -> Holder:
    """The policy's holder under `placement` (`placed` is the fleet placed by it)."""
    allowed = {written.backups[policy].host, placed.backups[policy].host}
    moves = policy in data_policies(written)  # none without failover
    if written.failover is not None and moves:
        allowed |= {written.failover.primary, written.failover.backup}
    since = placement.since if moves else 0.0
    return Holder(placed.backups[policy].host, placement.epoch, frozenset(allowed), since)


def forged_reason(claim: SnapshotClaim, who: Holder) -> str | None:
    """Why `claim` cannot be a true snapshot of the policy, or None."""
    epoch = snapshot_epoch(claim.tags)
    if epoch > who.epoch:
        return f"tagged epoch-{epoch}, above the fleet's epoch {who.epoch}"
    if claim.host not in who.allowed:
        return f"claims host {claim.host!r}, which never held this policy"
    if claim.host != who.host and epoch == who.epoch:
        return (
            f"claims host {claim.host!r} in epoch {epoch}, when {who.host} holds the policy "
            "(a fenced host's write)"
        )
    if claim.host != who.host and who.since and claim.time.timestamp() > who.since:
        written = claim.time.isoformat(timespec="seconds")
        return (
            f"claims host {claim.host!r} at {written}, after the move "
            f"that gave the policy to {who.host} (epoch {who.epoch}) committed "
            "(a fenced host's write)"
        )
    return None


def judge(
    claims: tuple[SnapshotClaim, ...] | list[SnapshotClaim],
    who: Holder,
    reported: str | None,
    judged: set[str],
    now: datetime,
) -> list[Entry]:
    """New ledger entries for the listed `claims` not `judged` yet: the reported one
    recorded (if its claims fit), and every forged one."""
    out = []
    match = _reported_claim(claims, reported)
    for claim in claims:
        if claim.id in judged:
            continue
        epoch, time = snapshot_epoch(claim.tags), claim.time.timestamp()
        reason = forged_reason(claim, who)
        if reason is not None:
            out.append(Entry(claim.id, "forged", claim.host, epoch, time, now.timestamp(), reason))
        elif claim is match and claim.host == who.host:
            out.append(Entry(claim.id, "recorded", claim.host, who.epoch, time, now.timestamp()))
    return out


def _reported_claim(
    claims: tuple[SnapshotClaim, ...] | list[SnapshotClaim], reported: str | None
) -> SnapshotClaim | None:
    """The one listed snapshot the report names. restic's backup summary gives a short
    ID: a report that matches two snapshots (a crafted collision) matches none."""
    if reported is None or len(reported) < 8:
        return None
    found = [c for c in claims if c.id.startswith(reported)]
    return found[0] if len(found) == 1 else None
