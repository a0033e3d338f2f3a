"""Incidents: fingerprints, repeats, escalation, resolution; the outbox and channels
against the Telegram and Gitea stand-ins on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from reconciler.channels.telegram import telegram_text
from reconciler.engine.incidents import Incident, fingerprint, on_event, route
from reconciler.events.bus import Event
from reconciler.flows.incident_desk import IncidentDesk
from reconciler.flows.outbox_sender import OutboxSender, _rest
from reconciler.store.incidents import LocalIncidents
from reconciler.store.journal import Journal
from reconciler.untrusted.http import bounded_client
from state.spec.base import Severity
from state.spec.notifications import DEFAULT_REPEAT, Notifications
from tests.fleet.ports import free_port

STANDINS = Path(__file__).resolve().parents[1] / "standins"
# The seed's distress signal, key by key and in its order.
DISTRESS_KEYS = [
    "timestamp",
    "agent",
    "severity",
    "category",
    "component",
    "message",
    "context",
    "requested_action",
    "escalation_timeout",
]


def repeat(severity: Severity) -> timedelta:
    return DEFAULT_REPEAT[severity]


def failing(at: float, kind: str = "heal_failed", severity: Severity = "P3") -> Event:
    return Event(severity, kind, "ollama not healed", "hermes", "ollama", at=at)  # type: ignore[arg-type]


def test_one_condition_is_one_incident_with_repeats_at_the_interval() -> None:
    incident, transition = on_event(None, failing(0.0), repeat, "INC-1")
    assert transition == "opened" and incident is not None
    incident = incident.model_copy(update={"last_sent": 0.0})
    sent = []
    for minute in range(1, 10 * 60):  # ten hours of passes, one a minute
        incident, transition = on_event(incident, failing(minute * 60.0), repeat, "x")
        assert incident is not None and incident.id == "INC-1"
        if transition:
            sent.append((minute, transition))
            incident = incident.model_copy(update={"last_sent": minute * 60.0})
    assert sent == [(240, "repeated"), (480, "repeated")]  # P3: every 4h
    assert incident.count == 600


def test_escalation_raises_severity_and_healing_resolves() -> None:
    incident, _ = on_event(None, failing(0.0), repeat, "INC-1")
    incident, transition = on_event(incident, failing(10.0, "escalation", "P1"), repeat, "x")
    assert transition == "escalated" and incident is not None and incident.severity == "P1"
    healed = Event("P3", "healed", "hermes/ollama converged", "hermes", "ollama", at=20.0)
    incident, transition = on_event(incident, healed, repeat, "x")
    assert transition == "resolved" and incident is not None and incident.status == "resolved"
    assert [s.what.split(":")[0] for s in incident.timeline] == [
        "opened (P3)",
        "escalated to P1",
        "resolved",
    ]
    # The next failure is a new incident.
    again, transition = on_event(incident, failing(30.0), repeat, "INC-2")
    assert transition == "opened" and again is not None and again.id == "INC-2"


def test_fingerprints_and_routes() -> None:
    assert fingerprint(failing(0.0)) == ("unhealthy", "unhealthy:hermes:ollama")
    assert fingerprint(Event("P0", "failover", "moved", "hermes")) == ("failover", "failover")
    assert fingerprint(Event("P0", "switchover", "planned", "hermes")) == ("failover", "failover")
    assert fingerprint(Event("P0", "failback", "home", "kimi")) == ("failover", "failover")
    assert fingerprint(Event("P3", "spec_applied", "ok")) == ("spec", "spec")
    incident = Incident(
        id="I",
        fingerprint="f",
        family="unhealthy",
        host="h",
        service=None,
        severity="P1",
        first_seen=0,
        last_seen=0,
        message="m",
        told=("telegram", "gitea"),
    )
    routes: dict[Severity, list[str]] = {"P1": ["gitea", "log"]}
    assert route(routes, incident, "opened") == ["gitea", "log"]
    assert route(routes, incident, "resolved") == ["telegram", "gitea"]  # everyone told


def test_telegram_text_is_escaped_and_bounded() -> None:
    text = telegram_text({"severity": "P0", "transition": "opened", "text": "<b>&" + "x" * 5000})
    assert text.startswith("<b>P0 opened</b>\n&lt;b&gt;&amp;") and len(text) == 4096


@pytest.fixture
def standins(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """The Telegram and Gitea stand-ins on loopback ports, stores in tmp_path."""
    tg, gitea = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(STANDINS / "http_standins.py"),
                "telegram",
                "--port",
                str(tg),
                "--store",
                str(tmp_path / "tg.json"),
            ]
        ),
        subprocess.Popen(
            [
                sys.executable,
                str(STANDINS / "http_standins.py"),
                "gitea",
                "--port",
                str(gitea),
                "--store",
                str(tmp_path / "gitea.json"),
            ]
        ),
    ]
    for port in (tg, gitea):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
    try:
        yield tg, gitea, tmp_path
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=5)


def _notifications(
    tg: int, gitea: int, token: str, monkeypatch: pytest.MonkeyPatch
) -> Notifications:
    monkeypatch.setenv("TEST_TG_TOKEN", token)
    monkeypatch.setenv("TEST_GITEA_TOKEN", "gitea-secret")
    return Notifications.model_validate(
        {
            "channels": {
                "tg": {
                    "kind": "telegram",
                    "api_url": f"http://127.0.0.1:{tg}",
                    "token": "env:TEST_TG_TOKEN",
                    "chat_id": "1001",
                },
                "gitea": {
                    "kind": "gitea_issue",
                    "url": f"http://127.0.0.1:{gitea}",
                    "repo": "allegro/incidents",
                    "token": "env:TEST_GITEA_TOKEN",
                    "labels": ["incident", "no-such-label"],
                },
                "log": {"kind": "log"},
            },
            "routes": {"P0": ["tg", "gitea", "log"], "P1": ["gitea", "log"], "P3": ["log"]},
        }
    )


def test_desk_outbox_and_sender_deliver_once_in_order_and_close_on_resolve(
    standins: tuple[int, int, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tg, gitea, stores = standins
    secret = "123456:SECRET-token-value"
    notifications = _notifications(tg, gitea, secret, monkeypatch)
    journal = Journal(tmp_path / "journal.db")
    desk = IncidentDesk(LocalIncidents(journal), lambda: notifications)
    now = time.time()
    for i in range(10):  # one failure over 10 passes
        desk(Event("P1", "escalation", "ollama crash loop", "hermes", "ollama", at=now + i))
    desk(Event("P0", "failover", "kimi lost; moved to hermes", "hermes", at=now + 11))
    desk(Event("P3", "healed", "hermes/ollama converged", "hermes", "ollama", at=now + 12))
    with httpx.Client(trust_env=False) as client:
        sender = OutboxSender(LocalIncidents(journal), client, lambda _line: None)
        sender.drain(notifications, 20)
        # Replaying the same events queues nothing new: keys are unique per transition.
        assert sender.store.pending() == 0
    messages = json.loads((stores / "tg.json").read_text())
    assert [m["text"].split("\n")[0] for m in messages] == ["<b>P0 opened</b>"]
    issues = json.loads((stores / "gitea.json").read_text())
    assert len(issues) == 2, issues  # the crash loop, and the failover
    crash = next(i for i in issues if "unhealthy:hermes:ollama" in i["title"])
    assert crash["state"] == "closed" and crash["labels"] == [{"id": 5, "name": "incident"}]
    assert "resolved" in crash["comments"][-1]["body"]
    assert next(i for i in issues if "[fleet-reconciler failover]" in i["title"])["state"] == "open"
    logged = [
        json.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if line.startswith('{"level": "notification"')
    ]
    assert set(DISTRESS_KEYS) <= set(logged[0])
    assert logged[0]["requested_action"] == "father_intervention"
    store = LocalIncidents(journal)
    assert all(secret not in json.dumps(row) for row in store.recent())
    assert secret not in (tmp_path / "journal.db").read_bytes().decode("latin-1")


def test_a_channel_that_is_down_is_retried_and_errors_never_show_the_token(
    standins: tuple[int, int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tg, gitea, stores = standins
    secret = "999:TOKEN-must-not-leak"
    notifications = _notifications(tg, gitea, secret, monkeypatch)
    with httpx.Client(trust_env=False) as client:
        client.post(f"http://127.0.0.1:{tg}/test/mode", json={"mode": "limit"})
        journal = Journal(tmp_path / "journal.db")
        desk = IncidentDesk(LocalIncidents(journal), lambda: notifications)
        desk(Event("P0", "failover", "first", "hermes", at=time.time()))
        lines: list[str] = []
        sender = OutboxSender(LocalIncidents(journal), client, lines.append)
        sender.round(notifications)
        assert any("429" in line and "retry in 2s" in line for line in lines), lines
        assert all(secret not in line for line in lines)
        client.post(f"http://127.0.0.1:{tg}/test/mode", json={"mode": "ok"})
        sender.drain(notifications, 10)
    assert len(json.loads((stores / "tg.json").read_text())) == 1


def test_pir_draft_follows_the_seed_template_and_the_journal(tmp_path: Path) -> None:
    from reconciler.render.pir_text import render_pir

    journal = Journal(tmp_path / "journal.db")
    desk = IncidentDesk(LocalIncidents(journal), lambda: None)
    desk(Event("P1", "escalation", "ollama crash loop", "hermes", "ollama", at=1000.0))
    desk(Event("P3", "healed", "hermes/ollama converged", "hermes", "ollama", at=1600.0))
    store = LocalIncidents(journal)
    [incident] = store.recent()
    draft = render_pir(incident, store.deliveries(incident["id"]), journal.runs(), [])
    for heading in (
        "## Summary",
        "## Timeline",
        "## Root Cause",
        "## Resolution",
        "## Prevention",
        "## Action Items",
        "## Lessons Learned",
    ):
        assert heading in draft
    assert "- **Duration:**" in draft and "(10m00s)" in draft
    assert "- **Severity:** P1" in draft and "- **Component:** hermes/ollama" in draft
    assert "opened (P1): ollama crash loop" in draft and "resolved: hermes/ollama" in draft


def test_escalations_write_distress_files_in_the_seed_format(tmp_path: Path) -> None:
    notifications = Notifications.model_validate(
        {
            "channels": {"log": {"kind": "log"}},
            "routes": {"P1": ["log"]},
            "distress_dir": str(tmp_path / "distress"),
            "agent": "allegro-primus",
        }
    )
    journal = Journal(tmp_path / "journal.db")
    desk = IncidentDesk(LocalIncidents(journal), lambda: notifications)
    desk(Event("P3", "heal_failed", "ollama not healed", "hermes", "ollama", at=1000.0))
    assert not (tmp_path / "distress").exists()  # P3: no distress signal
    desk(Event("P1", "escalation", "Ollama not responding", "hermes", "ollama", at=1300.0))
    [written] = (tmp_path / "distress").glob("*.json")
    signal = json.loads(written.read_text())
    assert list(signal) == DISTRESS_KEYS
    assert signal["agent"] == "allegro-primus" and signal["severity"] == "P1"
    assert signal["requested_action"] == "father_intervention"
    assert list(signal["context"]) == [
        "last_success",
        "attempts",
        "error",
        "auto_recovery_attempted",
    ]


def test_escalation_levels_follow_the_seed_matrix_and_ack_stops_them(tmp_path: Path) -> None:
    notifications = Notifications.model_validate(
        {
            "channels": {
                "log": {"kind": "log"},
                "father": {"kind": "log"},
                "grandfather": {"kind": "log"},
            },
            "routes": {"P2": ["log"]},
            "escalation": [
                {"after": "5m", "notify": ["father"], "requested_action": "father_intervention"},
                {
                    "after": "30m",
                    "notify": ["grandfather"],
                    "severity": "P0",
                    "requested_action": "grandfather_intervention",
                },
            ],
        }
    )
    journal = Journal(tmp_path / "journal.db")
    desk = IncidentDesk(LocalIncidents(journal), lambda: notifications)
    store = LocalIncidents(journal)
    desk(Event("P2", "pass_crashed", "pass crashed", at=0.0))
    desk.sweep(299.0)
    [incident] = store.recent()
    assert incident["level"] == 0
    desk.sweep(300.0)  # level 2 (father) after 5 minutes, without any new event
    desk.sweep(301.0)  # once
    [incident] = store.recent()
    assert incident["level"] == 1 and incident["severity"] == "P2"
    channels = [channel for _key, channel, _sent, _error in store.deliveries(incident["id"])]
    assert channels == ["log", "father", "log"]
    queued = store.due(10**10)
    assert queued[-1].payload["distress"]["requested_action"] == "father_intervention"
    desk.sweep(1800.0)  # level 3 (grandfather) raises it to P0
    [incident] = store.recent()
    assert incident["level"] == 2 and incident["severity"] == "P0"

    # Acknowledged, a new incident stops at the level it has.
    desk(Event("P2", "drill_failed", "drill failed", "kimi", "backup:db", at=2000.0))
    drill = next(i for i in store.recent() if i["family"] == "drill")
    drill["acked"] = True
    store.put(drill["id"], drill["fingerprint"], drill["status"], drill)
    desk.sweep(2000.0 + 3600)
    assert next(i for i in store.recent() if i["family"] == "drill")["level"] == 0


def test_a_retried_notification_holds_the_later_ones_on_its_channel(
    standins: tuple[int, int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found on real hosts: while the first message waited for its retry, the later ones
    (never tried, so due) overtook it."""
    tg, gitea, stores = standins
    notifications = _notifications(tg, gitea, "1:x", monkeypatch)
    journal = Journal(tmp_path / "journal.db")
    desk = IncidentDesk(LocalIncidents(journal), lambda: notifications)
    with httpx.Client(trust_env=False) as client:
        client.post(f"http://127.0.0.1:{tg}/test/mode", json={"mode": "down"})
        sender = OutboxSender(LocalIncidents(journal), client, lambda _line: None)
        desk(Event("P0", "drill_failed", "outage 0", "h0", "backup:db", at=time.time()))
        sender.round(notifications)  # the first fails and waits 5 s
        for i in (1, 2):
            desk(Event("P0", "drill_failed", f"outage {i}", f"h{i}", "backup:db", at=time.time()))
        client.post(f"http://127.0.0.1:{tg}/test/mode", json={"mode": "ok"})
        sender.round(notifications)
        assert not (stores / "tg.json").exists()  # nothing overtook the first
        sender.drain(notifications, 20)
    texts = [m["text"] for m in json.loads((stores / "tg.json").read_text())]
    assert [t.split("outage ")[1][0] for t in texts] == ["0", "1", "2"]


def test_pir_post_comments_the_review_on_the_closed_issue_found_by_label_and_marker(
    standins: tuple[int, int, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reconciler.cli.main import main

    tg, gitea, stores = standins
    notifications = _notifications(tg, gitea, "1:tg", monkeypatch)
    journal = Journal(tmp_path / "journal.db")
    desk = IncidentDesk(LocalIncidents(journal), lambda: notifications)
    now = time.time()
    desk(Event("P1", "escalation", "ollama crash loop", "hermes", "ollama", at=now))
    desk(Event("P3", "healed", "hermes/ollama converged", "hermes", "ollama", at=now + 5))
    with httpx.Client(trust_env=False) as client:
        OutboxSender(LocalIncidents(journal), client, lambda _line: None).drain(notifications, 20)
    [incident] = LocalIncidents(journal).recent()
    state = tmp_path / "fleet.yaml"
    section = json.dumps(notifications.model_dump(mode="json", exclude_defaults=True))
    state.write_text(
        f"version: 1\nhosts:\n  hermes:\n    address: 198.18.0.12\nnotifications: {section}\n"
    )
    journal_arg = ["--journal", str(tmp_path / "journal.db")]
    argv = ["incidents", "pir", incident["id"], "--post", "--state", str(state), *journal_arg]
    assert main(argv) == 0
    draft = capsys.readouterr().out
    [issue] = json.loads((stores / "gitea.json").read_text())
    assert issue["state"] == "closed"  # found among closed issues, by label and marker
    assert issue["comments"][-1]["body"] == draft and "## Timeline" in draft
    # A channel the incident never reached has nothing to post to: a usage error.
    desk(Event("P3", "heal_failed", "agent not healed", "kimi", "agent", at=now + 9))
    [other] = [i for i in LocalIncidents(journal).recent() if i["id"] != incident["id"]]
    argv = ["incidents", "pir", other["id"], "--post", "--state", str(state), *journal_arg]
    assert main(argv) == 1
    assert "reached no Gitea issue channel" in capsys.readouterr().err


def test_a_channel_answering_garbage_fails_alone_and_the_others_deliver_in_order(
    standins: tuple[int, int, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Found on real hosts: Gitea answered 200 with a body that was not JSON, the sender
    raised JSONDecodeError every round, and a P0 Telegram page stayed unsent."""
    tg, gitea, stores = standins
    notifications = _notifications(tg, gitea, "1:x", monkeypatch)
    journal = Journal(tmp_path / "journal.db")
    desk = IncidentDesk(LocalIncidents(journal), lambda: notifications)
    lines: list[str] = []
    with bounded_client() as client:
        client.post(f"http://127.0.0.1:{gitea}/test/mode", json={"mode": "garbage"})
        for i in range(3):
            desk(Event("P0", "drill_failed", f"outage {i}", f"h{i}", "backup:db", at=time.time()))
        OutboxSender(LocalIncidents(journal), client, lines.append).drain(notifications, 5)
    texts = [m["text"] for m in json.loads((stores / "tg.json").read_text())]
    assert [t.split("outage ")[1][0] for t in texts] == ["0", "1", "2"]
    logged = [line for line in capsys.readouterr().err.splitlines() if '"notification"' in line]
    assert [json.loads(line)["message"][-1] for line in logged] == ["0", "1", "2"]
    assert any("notify gitea: gitea: GET /issues: the answer is not JSON" in x for x in lines)
    assert {q.channel for q in LocalIncidents(journal).unsent()} == {"gitea"}


def test_host_text_in_a_gitea_issue_is_inert(
    standins: tuple[int, int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tg, gitea, stores = standins
    notifications = _notifications(tg, gitea, "1:x", monkeypatch)
    journal = Journal(tmp_path / "journal.db")
    hostile = "oops ``` @admin [login](http://evil) ![x](http://evil/p.png) <b>hi</b>\x1b[2J\nfake"
    IncidentDesk(LocalIncidents(journal), lambda: notifications)(
        Event("P1", "escalation", hostile, "hermes", "ollama", at=time.time())
    )
    with bounded_client() as client:
        OutboxSender(LocalIncidents(journal), client, lambda _line: None).drain(notifications, 5)
    (issue,) = json.loads((stores / "gitea.json").read_text())
    assert "@admin" not in issue["title"] and "evil" not in issue["title"]
    body = issue["body"]
    assert "\x1b" not in body and "\\x1b[2J\\nfake" in body
    outside = [line for line, fenced in _fenced(body) if not fenced]
    assert outside and all(
        "@admin" not in x and "evil" not in x and "<b>" not in x for x in outside
    )
    assert body.split("\n")[2] == "````text"  # longer than the ``` inside: nothing closes it


def _fenced(markdown: str) -> list[tuple[str, bool]]:
    """Each line, and whether it is inside a fenced code block (CommonMark: a fence of N
    backticks closes only on a line of at least N backticks and nothing else)."""
    lines, fence = [], ""
    for line in markdown.split("\n"):
        run = len(line) - len(line.lstrip("`"))
        if not fence and run >= 3:
            fence = "`" * run
            lines.append((line, True))
        elif fence and line.strip() == "`" * len(line.strip()) and len(line.strip()) >= len(fence):
            fence = ""
            lines.append((line, True))
        else:
            lines.append((line, bool(fence)))
    return lines


def test_an_idle_sender_looks_again_at_once_when_woken_and_slowly_otherwise() -> None:
    stop, wake = threading.Event(), threading.Event()
    started = time.monotonic()
    _rest(stop, wake, 0.3)  # nothing queued, nothing woke it: the whole idle time
    assert time.monotonic() - started >= 0.3
    threading.Timer(0.05, wake.set).start()
    started = time.monotonic()
    _rest(stop, wake, 30.0)  # the desk queued a page: the next round now
    assert time.monotonic() - started < 5.0 and not wake.is_set()
    stop.set()
    started = time.monotonic()
    _rest(stop, wake, 30.0)  # stopping: at once
    assert time.monotonic() - started < 1.0
