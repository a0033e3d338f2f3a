"""The fleet's memory on a real etcd, with two `watch` controllers on real lab hosts:
what one controller was told, the other knows when it takes over. Nothing is mocked."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.coordination.etcd import EtcdClient
from reconciler.coordination.etcd_incidents import EtcdIncidents
from reconciler.events.bus import Event
from reconciler.flows.incident_desk import IncidentDesk
from state.load import load_fleet, parse_fleet
from state.spec.controller import EtcdCoordination
from tests.fleet import lab as fleet_lab
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.integration.conftest import STANDINS, lab_spec, run_reconcile
from tests.integration.test_forge import git
from tests.integration.test_leadership import (
    RETRY,
    TTL,
    controller,
    coordinated_spec,
    leader,
    ollama_healthy,
    stop_controllers,
    until,
)
from tests.integration.test_notifications import env, spec_text, standin  # noqa: F401


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with etcd_cluster(1) as started:
        yield started


def test_a_suspension_outlives_the_leader_that_honoured_it(
    lab: fleet_lab.Lab, cluster: Cluster, tmp_path: Path
) -> None:
    """`suspend` on the leader's machine, a service stopped by hand for maintenance, the
    leader SIGKILLed: the successor leaves the service stopped, and its `status` says
    why; `resume` on the successor's machine heals it."""
    spec = tmp_path / "fleet.yaml"
    spec.write_text(coordinated_spec(lab, cluster, "/memory"))
    settings = parse_fleet(spec.read_text(), spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    done = run_reconcile("--yes", str(spec), "--journal", str(tmp_path / "cli" / "j.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    procs = {"c1": controller("c1", spec, tmp_path)}
    try:
        until(lambda: leader(settings) == "c1", 30)
        procs["c2"] = controller("c2", spec, tmp_path)
        until(lambda: "standing by: c1 leads" in (tmp_path / "c2.log").read_text(), 30)
        c1_journal = str(tmp_path / "c1" / "journal.db")
        said = run_reconcile(
            "suspend", "--reason", "maintenance", str(spec), "--journal", c1_journal
        )
        assert said.returncode == 0 and "kept in etcd" in said.stdout, said.stdout + said.stderr
        fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")
        until(lambda: "suspended (maintenance)" in (tmp_path / "c1.log").read_text(), 30)

        procs["c1"].kill()
        until(lambda: leader(settings) == "c2", TTL + 30)
        until(lambda: "suspended (maintenance)" in (tmp_path / "c2.log").read_text(), 30)
        time.sleep(5)  # five of c2's probe rounds: unsuspended, it heals within two
        assert not ollama_healthy(lab), "the successor restarted a service under maintenance"
        c2_journal = str(tmp_path / "c2" / "journal.db")
        status = run_reconcile("status", str(spec), "--journal", c2_journal)
        assert "applying SUSPENDED since" in status.stdout, status.stdout + status.stderr
        assert "(maintenance)" in status.stdout

        resumed = run_reconcile("resume", str(spec), "--journal", c2_journal)
        assert "applying resumed" in resumed.stdout, resumed.stdout + resumed.stderr
        until(lambda: ollama_healthy(lab), 60)
    finally:
        stop_controllers(procs)


ISSUES = "/api/v1/repos/allegro/incidents/issues"


def test_pages_and_incidents_outlive_the_leader(
    lab: fleet_lab.Lab,
    cluster: Cluster,
    tmp_path: Path,
    env: None,  # noqa: F811 (the fixture)
) -> None:
    """Telegram down, three P0 pages queued and claimed by the leader's sender, and a
    crash loop's P1 incident open (its Gitea issue filed): the leader SIGKILLed, then
    Telegram back. The successor sends each page once, in order, takes the crash loop's
    backoff where the leader left it (no second escalation), and resolves the incident
    it did not open when the service is fixed: one issue, closed once."""
    spec = tmp_path / "fleet.yaml"
    etcd_line = (
        f"  coordination: {{kind: etcd, endpoints: [{', '.join(cluster.endpoints)}], "
        f"prefix: /pages, ttl: {TTL}s, retry_timeout: {RETRY}s}}\n"
    )

    def write(crashy: str | None) -> None:
        text = spec_text(lab, crashy)
        spec.write_text(text.replace("reconciler:\n", "reconciler:\n" + etcd_line, 1))

    write(None)
    done = run_reconcile("--yes", str(spec), "--journal", str(tmp_path / "cli" / "j.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    settings = load_fleet(spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    h2 = lab.host("h2").address
    before = len(standin(lab, 8081, "/test/messages"))
    issues_before = len(standin(lab, 3000, f"{ISSUES}?state=all"))
    httpx.post(f"http://{h2}:8081/test/mode", json={"mode": "down"}, timeout=5)
    procs = {"c1": controller("c1", spec, tmp_path)}
    client = EtcdClient(settings.endpoints, timeout=5.0)
    try:
        until(lambda: leader(settings) == "c1", 30)
        write("/bin/false")  # a crash loop on h1: escalated, a P1, a Gitea issue
        crash = wait_for_issues(lab, "unhealthy:h1:crashy", 1, 90)[0]
        notifications = load_fleet(spec).written.notifications
        desk = IncidentDesk(EtcdIncidents(client, "/pages"), lambda: notifications)
        for i in range(3):  # three P0 pages for Telegram, which is down
            desk(
                Event("P0", "drill_failed", f"outage {i}", f"host{i}", "backup:db", at=time.time())
            )
        until(lambda: claim_of(client, "tg") == "c1", 30)  # c1's sender has Telegram
        wait_for_issues(lab, "drill:host", 3, 30)
        procs["c2"] = controller("c2", spec, tmp_path)
        until(lambda: "standing by: c1 leads" in (tmp_path / "c2.log").read_text(), 30)

        procs["c1"].kill()  # with the pages claimed and unsent, and the incident open
        httpx.post(f"http://{h2}:8081/test/mode", json={"mode": "ok"}, timeout=5)
        until(lambda: leader(settings) == "c2", TTL + 30)
        until(lambda: len(standin(lab, 8081, "/test/messages")) >= before + 3, 60)
        # c2 goes on from c1's count: the crash loop was escalated once, by c1.
        until(lambda: "backoff(s) from the last leader" in (tmp_path / "c2.log").read_text(), 30)
        write("/bin/sleep infinity")  # fixed (a new spec: no backoff): c2 heals, resolves
        until(lambda: issue(lab, crash["number"])["state"] == "closed", 60)  # by c2
        time.sleep(3)  # anything sent twice would be here by now
        assert '"kind": "escalation"' not in (tmp_path / "c2.log").read_text()
    finally:
        stop_controllers(procs)
        client.close()
    pages = standin(lab, 8081, "/test/messages")[before:]
    assert [m["text"].split("outage ")[1][0] for m in pages] == ["0", "1", "2"], pages
    everything = standin(lab, 3000, f"{ISSUES}?state=all")
    assert len(everything) == issues_before + 4, everything  # no issue filed twice
    comments = httpx.get(f"http://{h2}:3000{ISSUES}/{crash['number']}/comments", timeout=5)
    assert sum("resolved" in c["body"] for c in comments.json()) == 1, comments.json()
    listed = run_reconcile(
        "incidents",
        "list",
        str(spec),
        "--output",
        "json",
        "--journal",
        str(tmp_path / "c2" / "journal.db"),
    )
    incidents = json.loads(listed.stdout)
    loop = [i for i in incidents if i["fingerprint"] == "unhealthy:h1:crashy"]
    assert [i["status"] for i in loop] == ["resolved"], loop


def wait_for_issues(lab: fleet_lab.Lab, title: str, count: int, timeout: float) -> list[Any]:
    found: list[Any] = []

    def enough() -> bool:
        found[:] = [i for i in standin(lab, 3000, f"{ISSUES}?state=all") if title in i["title"]]
        return len(found) >= count

    until(enough, timeout)
    return found


def issue(lab: fleet_lab.Lab, number: int) -> Any:
    return next(i for i in standin(lab, 3000, f"{ISSUES}?state=all") if i["number"] == number)


def claim_of(client: EtcdClient, channel: str) -> str | None:
    found = client.get(f"/pages/memory/outbox/claim/{channel}")
    return found.value.decode() if found else None


def test_a_pin_outlives_the_leader_through_later_pushes(
    lab: fleet_lab.Lab, cluster: Cluster, tmp_path: Path
) -> None:
    """Two controllers follow a git source (a bare repository on this machine). `pin`
    on the standby's machine holds the fleet on a commit through a push; the leader is
    SIGKILLed, another push lands, and the successor keeps the pinned commit; `unpin`
    on either machine follows the branch again."""
    bare, work = tmp_path / "fleet.git", tmp_path / "work"
    source = (
        f"source: {{url: 'file://{bare}', branch: main, path: state/fleet.yaml, interval: 2s}}\n"
    )
    spec = coordinated_spec(lab, cluster, "/pins").replace(f"{STANDINS}/", "bin/") + source
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "state" / "bin").mkdir(parents=True)
    for name in ("agent_standin.py", "http_standins.py"):
        shutil.copy(STANDINS / name, work / "state" / "bin" / name)

    def push(mode: str) -> str:
        (work / "state" / "fleet.yaml").write_text(spec.replace("mode = test", f"mode = {mode}"))
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", mode)
        git(work, "push", "-q", str(bare), "main")
        return git(work, "rev-parse", "HEAD")

    def conf() -> str:
        return fleet_lab.ssh(lab, "h1", "cat /etc/agent/agent.conf", check=False).strip()

    first = push("first")
    git(tmp_path, "clone", "-q", "-b", "main", str(bare), str(tmp_path / "checkout"))
    bootstrap = tmp_path / "checkout" / "state" / "fleet.yaml"  # the controllers' own copy
    settings = parse_fleet(bootstrap.read_text(), bootstrap).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    procs = {"c1": controller("c1", bootstrap, tmp_path)}
    try:
        until(lambda: leader(settings) == "c1", 30)
        until(lambda: conf() == "mode = first", 90)
        procs["c2"] = controller("c2", bootstrap, tmp_path)
        until(lambda: "standing by: c1 leads" in (tmp_path / "c2.log").read_text(), 30)
        push("second")
        until(lambda: conf() == "mode = second", 60)
        steer = (str(bootstrap), "--journal", str(tmp_path / "c2" / "journal.db"))
        pinned = run_reconcile("pin", first[:10], *steer)
        assert pinned.returncode == 0, pinned.stdout + pinned.stderr
        until(lambda: conf() == "mode = first", 60)  # c1 rolled back to the pin
        push("third")
        time.sleep(5)  # c1 fetches every 2s: the pin stands
        assert conf() == "mode = first"
        # Any machine's status shows the fleet's pin (this journal never saw one).
        status = run_reconcile("status", str(bootstrap), "--journal", str(tmp_path / "o.db"))
        assert f"PINNED at {first[:12]}" in status.stdout, status.stdout + status.stderr

        procs["c1"].kill()
        until(lambda: leader(settings) == "c2", TTL + 30)
        push("fourth")
        until(lambda: "in force" in (tmp_path / "c2.log").read_text(), 30)
        time.sleep(6)  # c2 fetched the branch at least twice
        assert conf() == "mode = first", "the successor moved off the pinned commit"
        unpinned = run_reconcile("unpin", *steer)
        assert unpinned.returncode == 0, unpinned.stdout + unpinned.stderr
        until(lambda: conf() == "mode = fourth", 60)
    finally:
        stop_controllers(procs)


CRASHY = """\
  crashy:
    host: h1
    unit: {description: crashy, exec_start: /bin/false, restart: "no"}
    health: [{kind: systemd}]
    rto: 3s
"""


def test_a_paused_leader_writes_nothing_of_the_fleets_memory(
    lab: fleet_lab.Lab, cluster: Cluster, tmp_path: Path
) -> None:
    """A crash loop keeps the leader writing (its backoffs, its incident's timeline) every
    two seconds. c1 is SIGSTOPped, c2 takes over and goes on, then c2 is SIGSTOPped
    too (its lease still runs) and c1 woken alone: no key of the fleet's memory or
    shared state changes until c2 is woken, and c1 steps down."""
    base = lab_spec(lab)
    spec = tmp_path / "fleet.yaml"
    spec.write_text(
        base.replace("models:", CRASHY + "models:", 1)
        + "reconciler:\n  interval: 30s\n  probe_interval: 1s\n  backoff_initial: 1s\n"
        + "  backoff_max: 2s\n"
        + f"  coordination: {{kind: etcd, endpoints: [{', '.join(cluster.endpoints)}], "
        + "prefix: /paused, ttl: 10s, retry_timeout: 1s}\n"
    )
    settings = parse_fleet(spec.read_text(), spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    client = EtcdClient(settings.endpoints, timeout=5.0)

    def newest() -> int:
        kvs = [*client.get_prefix("/paused/memory/"), *client.get_prefix("/paused/shared/")]
        return max((kv.mod_revision for kv in kvs), default=0)

    procs = {"c1": controller("c1", spec, tmp_path)}
    try:
        until(lambda: leader(settings) == "c1", 30)
        procs["c2"] = controller("c2", spec, tmp_path)
        until(lambda: client.get("/paused/memory/backoff/h1") is not None, 60)  # c1 writes
        procs["c1"].send_signal(signal.SIGSTOP)
        until(lambda: leader(settings) == "c2", 30)
        written = newest()
        until(lambda: newest() > written, 30)  # c2 goes on writing
        procs["c2"].send_signal(signal.SIGSTOP)
        time.sleep(1.0)  # anything c2 had in flight has landed
        before = newest()
        procs["c1"].send_signal(signal.SIGCONT)
        time.sleep(4.0)  # c1 alone, c2's lease still running (ttl 10 s)
        after = newest()
        procs["c2"].send_signal(signal.SIGCONT)
        assert after == before, "the paused leader wrote to the fleet's memory after waking"
        until(lambda: "c1 steps down" in (tmp_path / "c1.log").read_text(), 20)
    finally:
        stop_controllers(procs)
        client.close()
