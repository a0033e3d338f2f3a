"""`reconcile incidents [list|ack ID|pir ID [--post]]` and `reconcile notify test [CHANNEL]`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from reconciler.channels.gitea_issue import post_incident_review
from reconciler.channels.interface import ChannelError
from reconciler.channels.send import send_test_messages
from reconciler.cli import exit_codes
from reconciler.cli.terminal import report
from reconciler.coordination.etcd_incidents import incidents_for
from reconciler.errors import Refused, UsageError
from reconciler.render.pir_text import render_pir
from reconciler.store.incidents import Incidents, LocalIncidents
from reconciler.store.journal import Journal
from reconciler.untrusted.http import bounded_client
from state.load import load_fleet
from state.secrets import SecretUnavailable
from state.spec.notifications import GiteaIssueChannel


def cmd_incidents(args: argparse.Namespace) -> int:

    if args.output == "json" and args.action != "list":
        raise UsageError(f"reconcile incidents {args.action}: --output json is for `list` only")
    store = _incidents(args)
    if args.action == "ack":
        if not args.id:
            raise UsageError("reconcile incidents ack needs an incident ID")
        found = store.get(args.id)
        if found is None:
            raise Refused(f"no incident {args.id}")
        now = time.time()
        found["acked"] = True
        found["timeline"] = [*found["timeline"], {"at": now, "what": "acknowledged"}]
        store.put(found["id"], found["fingerprint"], found["status"], found)
        report(f"incident {args.id} acknowledged: no more repeats until it resolves")
        return exit_codes.OK
    if args.action == "pir":
        return _pir(args, store)
    incidents = store.recent(args.limit)
    if args.output == "json":
        for incident in incidents:
            incident["deliveries"] = [
                {"key": k, "channel": c, "sent": s, "error": e}
                for k, c, s, e in store.deliveries(incident["id"])
            ]
        print(json.dumps(incidents, indent=2))
        return exit_codes.OK
    print("\n".join(incident_lines(incidents)) if incidents else "no incidents")
    return exit_codes.OK


def _incidents(args: argparse.Namespace) -> Incidents:
    """The fleet's incidents: with etcd (the state file's coordination), every
    controller's; else this controller's journal (also when there is no state file)."""
    journal = Journal(args.journal)
    if not Path(args.state).is_file():
        return LocalIncidents(journal)
    return incidents_for(load_fleet(args.state).fleet.reconciler.coordination, journal)


def _pir(args: argparse.Namespace, store: Incidents) -> int:
    if not args.id:
        raise UsageError("reconcile incidents pir needs an incident ID")
    incident = store.get(args.id)
    if incident is None:
        raise Refused(f"no incident {args.id}")
    journal = Journal(args.journal)
    kind_events = [
        e
        for e in journal.events(limit=200)
        if incident["first_seen"] - 1 <= e.at <= (incident.get("resolved_at") or time.time()) + 1
        and (incident["host"] is None or e.host == incident["host"])
    ]
    draft = render_pir(incident, store.deliveries(args.id), journal.runs(200), kind_events)
    print(draft, end="")
    return _post_incident_review(args.state, incident, store, draft) if args.post else exit_codes.OK


def _post_incident_review(
    state: str, incident: dict[str, Any], store: Incidents, draft: str
) -> int:
    """`pir --post`: the draft as a comment on each Gitea issue the incident reached."""

    notifications = load_fleet(state).written.notifications
    channels = notifications.channels if notifications else {}
    told = sorted(
        {c for _key, c, sent, _e in store.deliveries(incident["id"]) if sent}
        & {name for name, ch in channels.items() if isinstance(ch, GiteaIssueChannel)}
    )
    if not told:
        raise Refused(
            f"incident {incident['id']} reached no Gitea issue channel of {state}: "
            "nothing to post the review to"
        )
    failed = 0
    with bounded_client() as client:
        for name in told:
            channel = channels[name]
            assert isinstance(channel, GiteaIssueChannel)
            try:
                note = post_incident_review(channel, incident["fingerprint"], draft, client)
                report(f"{name}: {note}")
            except (ChannelError, SecretUnavailable) as exc:
                failed += 1
                report(f"{name}: FAILED to post the review: {exc}")
    return exit_codes.ERROR if failed else exit_codes.OK


def incident_lines(incidents: list[dict[str, Any]]) -> list[str]:
    """One line per incident (also `status`, for the open ones)."""
    lines = []
    for incident in incidents:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(incident["first_seen"]))
        where = "/".join(x for x in (incident["host"], incident["service"]) if x) or "fleet"
        acked = ", acked" if incident.get("acked") else ""
        lines.append(
            f"{incident['id']}  {incident['status']:<8} {incident['severity']}  {where}  "
            f"since {since}, seen {incident['count']}x{acked}: {incident['message']}"
        )
    return lines


def cmd_notify(args: argparse.Namespace) -> int:
    """Send a test message through each channel (the runbook's DR "Test 4")."""

    notifications = load_fleet(args.state).written.notifications
    if notifications is None:
        raise Refused(f"{args.state} has no notifications section")
    names = [args.channel] if args.channel else sorted(notifications.channels)
    unknown = [n for n in names if n not in notifications.channels]
    if unknown:
        raise Refused(f"unknown channel {unknown[0]!r}; have {', '.join(notifications.channels)}")
    with bounded_client() as client:
        results = send_test_messages(notifications, names, client)
    for name, ok, note in results:
        print(f"{name}: ok ({note})" if ok else f"{name}: FAILED: {note}")
    failed = sum(1 for _name, ok, _note in results if not ok)
    return exit_codes.ERROR if failed else exit_codes.OK
