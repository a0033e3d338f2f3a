"""The snapshot ledger, shared: with etcd, the leader writes each backup policy's ledger
(`shared/ledger/POLICY`, under its token, when it changed) after every pass and every
one-shot command it leads; a controller that becomes leader merges it into its own
journal before its first pass. So a snapshot one leader recorded is one its successor
may restore, also when the host that reported it is gone by then.

The ledger stays a table in each journal (every read is local); etcd carries what the
leaders recorded between them. One controller: nothing is shared (`LocalLeadership`).
"""

from __future__ import annotations

import json

from reconciler.coordination.leader import Leadership
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from state.load import LoadedFleet

Pushed = dict[str, str]
"""What this leader last wrote under each shared key in its term (`ledger/POLICY`,
`spec`, `failover/PAIR`): an unchanged value is not written again."""


def pull_ledgers(leadership: Leadership, journal: Journal, loaded: LoadedFleet) -> int:
    """Merge every policy's shared ledger into this journal; how many snapshots were new."""
    ledger, added = Ledger(journal), 0
    for name, policy in sorted(loaded.fleet.backups.items()):
        raw = leadership.shared_get(ledger_key(name), policy.host)
        if raw is None:
            continue
        try:
            exported = json.loads(raw)
        except ValueError:
            continue  # not the leaders' writing: nothing to merge
        added += ledger.merge(name, exported)
    return added


def push_ledgers(
    leadership: Leadership, journal: Journal, loaded: LoadedFleet, pushed: Pushed
) -> None:
    """Write each policy's ledger that changed since `pushed` (and note it there)."""
    ledger = Ledger(journal)
    for name, policy in sorted(loaded.fleet.backups.items()):
        value = json.dumps(ledger.export(name), sort_keys=True)
        if pushed.get(ledger_key(name)) == value:
            continue
        if leadership.shared_put(ledger_key(name), value, policy.host):
            pushed[ledger_key(name)] = value


def ledger_key(policy: str) -> str:
    return f"ledger/{policy}"
