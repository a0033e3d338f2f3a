"""Incidents and notifications on real hosts: the Telegram and Gitea stand-ins run as
services on h2; a service on h1 that cannot start is escalated to a Gitea issue (P1),
which is closed when the service is healed; `notify test` reaches every channel."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.store.incidents import LocalIncidents
from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab
from tests.fleet.scrape import probe_passes
from tests.integration.conftest import (
    STANDINS,
    _sha,
    lab_spec,
    run_reconcile,
    start_reconcile,
    watch_passed,
)

TG_TOKEN = "4242:notification-test-token"


ESCALATION = """\
  escalation:
    - {after: 8s, notify: [tg], requested_action: father_intervention}
    - {after: 25s, notify: [tg], severity: P0, requested_action: grandfather_intervention}
"""


def channels(lab: fleet_lab.Lab, crashy: str | None, escalation: str) -> str:
    h2 = lab.host("h2").address
    crashy_service = (
        f"""\
  crashy:
    host: h1
    unit: {{description: crashy, exec_start: "{crashy}", restart: "no"}}
    health: [{{kind: systemd}}]
    rto: 3s
"""
        if crashy
        else ""
    )
    return f"""\
  telegram:
    host: h2
    install: {{kind: file, source: {STANDINS}/http_standins.py, sha256: {_sha("http_standins.py")}, dest: /usr/local/bin/telegram-standin}}
    unit: {{description: telegram stand-in, exec_start: /usr/bin/python3 /usr/local/bin/telegram-standin telegram --port 8081}}
    health: [{{kind: tcp, port: 8081}}]
  gitea:
    host: h2
    install: {{kind: file, source: {STANDINS}/http_standins.py, sha256: {_sha("http_standins.py")}, dest: /usr/local/bin/gitea}}
    unit: {{description: gitea stand-in, exec_start: /usr/bin/python3 /usr/local/bin/gitea gitea --port 3000}}
    health: [{{kind: tcp, port: 3000}}]
{crashy_service}notifications:
  channels:
    tg: {{kind: telegram, api_url: "http://{h2}:8081", token: env:TEST_TG_TOKEN, chat_id: "1001"}}
    issues: {{kind: gitea_issue, url: "http://{h2}:3000", repo: allegro/incidents, token: env:TEST_GITEA_TOKEN, labels: [incident]}}
    log: {{kind: log}}
  routes:
    P0: [tg, issues, log]
    P1: [issues, log]
    P3: [log]
{escalation}reconciler:
  interval: 30s
  probe_interval: 1s
  backoff_initial: 1s
  escalate_after_attempts: 2
"""


def spec_text(lab: fleet_lab.Lab, crashy: str | None, escalation: str = "") -> str:
    base = lab_spec(lab)
    services_end = base.index("models:")
    return base[:services_end] + channels(lab, crashy, escalation) + base[services_end:]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TEST_TG_TOKEN", TG_TOKEN)
    monkeypatch.setenv("TEST_GITEA_TOKEN", "gitea-test-token")
    yield


def standin(lab: fleet_lab.Lab, port: int, path: str) -> Any:
    url = f"http://{lab.host('h2').address}:{port}{path}"
    return httpx.get(url, timeout=5).json()


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_escalation_opens_one_issue_that_healing_closes(
    lab: fleet_lab.Lab, tmp_path: Path, env: None
) -> None:
    spec, journal = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    spec.write_text(spec_text(lab, None))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr

    # The seed's DR "Test 4": every channel answers.
    tested = run_reconcile("notify", "test", "--state", str(spec))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "tg: ok (telegram message 1)" in tested.stdout
    assert (
        "issues: ok (gitea issue #1 opened; gitea issue #1 commented and closed)" in tested.stdout
    )

    spec.write_text(spec_text(lab, "/bin/false", ESCALATION))
    issues_path = "/api/v1/repos/allegro/incidents/issues"
    watch = start_reconcile(
        "watch", str(spec), "--journal", str(journal), "--max-seconds", "120", capture=True
    )
    try:
        crash_issue = wait_for(
            "a Gitea issue for the crash loop",
            lambda: [
                i for i in standin(lab, 3000, issues_path) if "unhealthy:h1:crashy" in i["title"]
            ],
            60,
        )[0]
        assert crash_issue["title"].startswith("[P1] ")
        assert crash_issue["labels"] == [{"id": 5, "name": "incident"}]
        status = run_reconcile("status", str(spec), "--journal", str(journal))
        assert "open incidents: 1" in status.stdout and "P1  h1/crashy" in status.stdout, (
            status.stdout
        )
        # Escalation level 1 (after 8 s) pages Telegram; acknowledged, level 2 never comes.
        wait_for("the level-1 page", lambda: len(standin(lab, 8081, "/test/messages")) == 2, 40)
        listed = json.loads(
            run_reconcile("incidents", "--output", "json", "--journal", str(journal)).stdout
        )
        crash_id = next(i["id"] for i in listed if i["fingerprint"] == "unhealthy:h1:crashy")
        acked = run_reconcile("incidents", "ack", crash_id, "--journal", str(journal))
        assert acked.returncode == 0, acked.stderr
        time.sleep(25)  # past level 2's 25 s, with failing passes all along: deduplicated
        assert len(standin(lab, 8081, "/test/messages")) == 2
        spec.write_text(spec_text(lab, "/bin/sleep infinity", ESCALATION))
        wait_for(
            "the issue closed",
            lambda: (
                not [
                    i
                    for i in standin(lab, 3000, issues_path)
                    if "unhealthy:h1:crashy" in i["title"]
                ]
            ),
            60,
        )
        wait_for(
            "the resolution on Telegram", lambda: len(standin(lab, 8081, "/test/messages")) == 3, 20
        )
    finally:
        if watch.poll() is None:
            watch.send_signal(signal.SIGTERM)
        out, err = watch.communicate(timeout=60)
    everything = standin(lab, 3000, f"{issues_path}?state=all")
    crash = [i for i in everything if "unhealthy:h1:crashy" in i["title"]]
    assert len(crash) == 1 and crash[0]["state"] == "closed", everything
    comments = httpx.get(
        f"http://{lab.host('h2').address}:3000{issues_path}/{crash[0]['number']}/comments",
        timeout=5,
    ).json()
    assert "resolved" in comments[-1]["body"]
    pages = [m["text"].split("\n")[0] for m in standin(lab, 8081, "/test/messages")]
    # The test message, level 1 (P3 or P1: whichever the crash loop had reached by 8 s),
    # and the resolution: nothing else, though the service failed for half a minute.
    assert pages[0] == "<b>P3 opened</b>" and pages[2] == "<b>P1 resolved</b>", pages
    assert len(pages) == 3 and pages[1].endswith(" escalated</b>"), pages
    listed = run_reconcile("incidents", "--output", "json", "--journal", str(journal))
    incidents = json.loads(listed.stdout)
    crash_incident = next(i for i in incidents if i["fingerprint"] == "unhealthy:h1:crashy")
    assert crash_incident["status"] == "resolved" and crash_incident["severity"] == "P1"
    assert crash_incident["level"] == 1 and crash_incident["acked"]
    assert all(d["sent"] for d in crash_incident["deliveries"])
    # The token is nowhere but in the environment.
    assert TG_TOKEN not in out + err
    for stored in tmp_path.glob("journal.db*"):  # the database and its WAL
        assert TG_TOKEN.encode() not in stored.read_bytes()


def test_telegram_down_then_back_and_a_killed_controller_deliver_once_in_order(
    lab: fleet_lab.Lab, tmp_path: Path, env: None
) -> None:
    """Three P0 incidents are queued while Telegram is down; the controller sending them
    is killed (SIGKILL) and started again once Telegram is back: each message arrives
    once, in the order queued, and Gitea has one issue per incident."""
    from reconciler.events.bus import Event
    from reconciler.flows.incident_desk import IncidentDesk
    from state.load import load_fleet

    spec, journal_path = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    spec.write_text(spec_text(lab, None))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal_path))
    assert done.returncode == 0, done.stdout + done.stderr
    h2 = lab.host("h2").address
    before = len(standin(lab, 8081, "/test/messages"))
    issues_before = len(standin(lab, 3000, "/api/v1/repos/allegro/incidents/issues?state=all"))
    httpx.post(f"http://{h2}:8081/test/mode", json={"mode": "down"}, timeout=5)
    notifications = load_fleet(spec).written.notifications
    journal = Journal(journal_path)
    desk = IncidentDesk(LocalIncidents(journal), lambda: notifications)
    for i in range(3):  # three different hosts' outages: three incidents
        desk(Event("P0", "drill_failed", f"outage {i}", f"host{i}", "backup:db", at=time.time()))
    journal.close()

    first = start_reconcile(
        "watch", str(spec), "--journal", str(journal_path), "--max-seconds", "60", capture=True
    )
    wait_for(
        "the Gitea issues (Telegram is down)",
        lambda: (
            len(standin(lab, 3000, "/api/v1/repos/allegro/incidents/issues?state=all"))
            >= issues_before + 3
        ),
        40,
    )
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert len(standin(lab, 8081, "/test/messages")) == before  # nothing got through

    httpx.post(f"http://{h2}:8081/test/mode", json={"mode": "ok"}, timeout=5)
    second = start_reconcile(
        "watch", str(spec), "--journal", str(journal_path), "--max-seconds", "90", capture=True
    )
    try:
        arrived = wait_for(
            "three Telegram messages",
            lambda: (m := standin(lab, 8081, "/test/messages")[before:]) and len(m) >= 3 and m,
            80,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        out, err = second.communicate(timeout=60)
    time.sleep(2)
    arrived = standin(lab, 8081, "/test/messages")[before:]
    assert [m["text"].split("outage ")[1][0] for m in arrived] == ["0", "1", "2"], arrived
    issues = standin(lab, 3000, "/api/v1/repos/allegro/incidents/issues?state=all")
    assert len(issues) == issues_before + 3, issues
    assert TG_TOKEN not in out + err


FAILOVER = """\
failover: {primary: h1, backup: h2, services: [agent], grace: 20s, fence_after: 14s}
"""


def test_a_p0_pages_every_channel_and_a_cut_host_is_one_incident(
    lab: fleet_lab.Lab, tmp_path: Path, env: None
) -> None:
    spec, journal = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    for host in ("h1", "h2"):  # a new controller: the hosts forget earlier epochs
        fleet_lab.ssh(lab, host, "rm -rf /var/lib/fleet-reconciler/fence")
    spec.write_text(spec_text(lab, None) + FAILOVER)
    done = run_reconcile("--yes", str(spec), "--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr
    issues_path = "/api/v1/repos/allegro/incidents/issues"
    pages_before = len(standin(lab, 8081, "/test/messages"))

    # P0: a move of the failover services (here planned) pages Telegram, Gitea and the log.
    moved = run_reconcile(
        "failover", "--to", "h2", "--state", str(spec), "--journal", str(journal), "--yes"
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    pages = standin(lab, 8081, "/test/messages")[pages_before:]
    assert [p["text"].split("\n")[0] for p in pages] == ["<b>P0 opened</b>"], pages
    assert "switchover" in pages[0]["text"]
    assert [
        i for i in standin(lab, 3000, issues_path) if "[fleet-reconciler failover]" in i["title"]
    ]
    assert '"requested_action": "grandfather_intervention"' in moved.stderr
    back = run_reconcile("failback", "--state", str(spec), "--journal", str(journal), "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    pages = standin(lab, 8081, "/test/messages")[pages_before:]
    assert [p["text"].split("\n")[0] for p in pages][-1] == "<b>P0 resolved</b>", pages
    assert not [
        i for i in standin(lab, 3000, issues_path) if "[fleet-reconciler failover]" in i["title"]
    ]

    # P0 at once: the primary lost (controller and backup agree) pages before the grace
    # ends, on every P0 channel, and resolves when it is back within the grace.
    pages_before = len(standin(lab, 8081, "/test/messages"))
    launched = time.time()
    watch = start_reconcile(
        "watch", str(spec), "--journal", str(journal), "--max-seconds", "120", capture=True
    )
    try:
        # Cut once the watch has passed over the fleet (so it is probing), not after a
        # guessed sleep a loaded machine can outrun.
        wait_for("the watch's first pass", lambda: watch_passed(journal, spec, launched), 60)
        cut = time.time()
        fleet_lab.cut_link(lab, "h1")
        try:
            [page] = wait_for(
                "the primary-down page",
                lambda: standin(lab, 8081, "/test/messages")[pages_before:],
                15,
            )
        finally:
            fleet_lab.restore_link(lab, "h1")
        assert page["text"].startswith("<b>P0 opened</b>") and "h1 unreachable" in page["text"]
        assert page["date"] - cut < 15  # the grace is 20 s: it pages before any move
        assert [
            i
            for i in standin(lab, 3000, issues_path)
            if "[fleet-reconciler primary:h1:-]" in i["title"]
        ]
        wait_for(
            "the primary-down page resolved",
            lambda: [
                p
                for p in standin(lab, 8081, "/test/messages")[pages_before:]
                if p["text"].startswith("<b>P0 resolved</b>")
            ],
            30,
        )
    finally:
        fleet_lab.restore_link(lab, "h1")
        watch.send_signal(signal.SIGTERM)
        out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err[-2000:]
    assert "failed over" not in out + err  # no move: it was back within the grace

    # Inhibition: h1 cut off is one incident (the host), not one per service on it; it
    # resolves when h1 is back.
    spec.write_text(spec_text(lab, None))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr
    watch = start_reconcile(
        "watch", str(spec), "--journal", str(journal), "--max-seconds", "180", capture=True
    )

    def incidents() -> list[dict[str, Any]]:
        listed = run_reconcile("incidents", "--output", "json", "--journal", str(journal))
        found: list[dict[str, Any]] = json.loads(listed.stdout)
        return [i for i in found if i["family"] == "unhealthy"]

    try:
        time.sleep(3)
        fleet_lab.cut_link(lab, "h1")
        wait_for("repeated failures on h1", lambda: [i for i in incidents() if i["count"] >= 3], 90)
        fleet_lab.restore_link(lab, "h1")
        wait_for(
            "the incident resolved", lambda: all(i["status"] == "resolved" for i in incidents()), 90
        )
    finally:
        fleet_lab.restore_link(lab, "h1")
        if watch.poll() is None:
            watch.send_signal(signal.SIGTERM)
        _out, err = watch.communicate(timeout=60)
    unhealthy = incidents()
    assert [i["fingerprint"] for i in unhealthy] == ["unhealthy:h1:-"], (unhealthy, err[-2000:])

    # The DR drill's channel step: every notification channel answers a test message.
    drilled = run_reconcile("drill", str(spec), "--journal", str(journal), "--output", "json")
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    told = [s for s in json.loads(drilled.stdout) if s["subject"].startswith("notify ")]
    assert [(s["subject"], s["verdict"]) for s in told] == [
        ("notify issues", "pass"),
        ("notify log", "pass"),
        ("notify tg", "pass"),
    ], told


def test_telegram_down_two_minutes_the_loop_keeps_its_pace_and_all_arrive_once_in_order(
    lab: fleet_lab.Lab, tmp_path: Path, env: None
) -> None:
    """Telegram answers 503 for 2 minutes while three P0s wait to be sent: the loop keeps
    passing (its probe passes are counted on /metrics), and once Telegram is back each
    message arrives once, in order."""

    from reconciler.events.bus import Event
    from reconciler.flows.incident_desk import IncidentDesk
    from state.load import load_fleet
    from tests.fleet.ports import free_port

    spec, journal_path = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    spec.write_text(spec_text(lab, None))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal_path))
    assert done.returncode == 0, done.stdout + done.stderr
    h2 = lab.host("h2").address
    before = len(standin(lab, 8081, "/test/messages"))
    httpx.post(f"http://{h2}:8081/test/mode", json={"mode": "down"}, timeout=5)
    journal = Journal(journal_path)
    desk = IncidentDesk(LocalIncidents(journal), lambda: load_fleet(spec).written.notifications)
    for i in range(3):
        desk(Event("P0", "drill_failed", f"outage {i}", f"host{i}", "backup:db", at=time.time()))
    journal.close()
    address = f"127.0.0.1:{free_port()}"
    watch = start_reconcile(
        "watch", str(spec), "--journal", str(journal_path), "--http", address,
        "--max-seconds", "200", capture=True,
    )  # fmt: skip

    try:
        wait_for("the dashboard", lambda: _answers(f"http://{address}/metrics"), 30)
        started = probe_passes(address)
        time.sleep(120)
        assert len(standin(lab, 8081, "/test/messages")) == before  # down all along
        # The loop kept passing all through the outage (probe_interval 1 s: about one pass
        # a second; a loop blocked on the channel would count none). Not a timing bound:
        # the pass time against a live channel is measured in bench.notifications.
        assert probe_passes(address) - started >= 30
        httpx.post(f"http://{h2}:8081/test/mode", json={"mode": "ok"}, timeout=5)
        wait_for(
            "three Telegram messages",
            lambda: len(standin(lab, 8081, "/test/messages")) >= before + 3,
            90,
        )
        time.sleep(3)
    finally:
        httpx.post(f"http://{h2}:8081/test/mode", json={"mode": "ok"}, timeout=5)
        watch.send_signal(signal.SIGTERM)
        out, err = watch.communicate(timeout=60)
    arrived = standin(lab, 8081, "/test/messages")[before:]
    assert [m["text"].split("outage ")[1][0] for m in arrived] == ["0", "1", "2"], arrived
    assert TG_TOKEN not in out + err


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
