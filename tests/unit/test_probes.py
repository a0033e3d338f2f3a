"""Health probes and the per-host observation request: pure or fed by httpx.MockTransport."""

from __future__ import annotations

from datetime import timedelta

import httpx

from reconciler.hosts.observation import FileState, HostState, UnitState
from reconciler.hosts.observe import ObserveSettings, observe_request, snapshot_requests
from reconciler.hosts.probes import evaluate_file_fresh, evaluate_systemd, list_models, probe_http
from reconciler.hosts.protocol import SnapshotRequest
from state.layout import MANAGED_RECORD
from state.spec.services import FileFreshCheck, HttpCheck, SystemdCheck
from tests.unit.helpers import load_text
from tests.unit.test_diff_plan import SPEC


def client(handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(transport=handler)


def test_http_probe_checks_status_and_json_key() -> None:
    answers = {"/ok": (200, {"models": []}), "/nokey": (200, {"x": 1}), "/err": (503, {})}

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "198.18.9.1"
        status, body = answers[request.url.path]
        return httpx.Response(status, json=body)

    with client(httpx.MockTransport(handle)) as c:

        def probe(path: str):  # type: ignore[no-untyped-def]
            check = HttpCheck(kind="http", url=f"http://{{address}}:11434{path}", json_key="models")
            return probe_http(c, check, "198.18.9.1")

        assert probe("/ok").healthy
        assert probe("/nokey").detail.startswith("JSON has no key 'models'")
        assert probe("/err").detail.startswith("status 503, expected 200")


def test_http_probe_connection_error_is_a_result() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    with client(httpx.MockTransport(refuse)) as c:
        result = probe_http(c, HttpCheck(kind="http", url="http://{address}/"), "198.18.9.1")
    assert not result.healthy and result.detail == "ConnectError: Connection refused"


def test_list_models() -> None:
    def tags(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/tags"
        return httpx.Response(200, json={"models": [{"model": "b:1"}, {"model": "a:2"}]})

    transport = httpx.MockTransport(tags)
    assert list_models("http://198.18.9.1:11434", transport).present == ("a:2", "b:1")


def test_list_models_failure_is_recorded_not_raised() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": "out of memory"})

    state = list_models("http://198.18.9.1:11434", httpx.MockTransport(down))
    assert state.present == () and state.error == "HTTP 500: out of memory"


def test_systemd_and_file_fresh_are_evaluated_from_the_snapshot() -> None:
    host = HostState(
        name="h1",
        reachable=True,
        now=10_000,
        units={"agent": UnitState(active="failed", sub="failed", enabled="enabled")},
        files={
            "/var/log/a.log": FileState(
                mode="0644",
                owner="root",
                group="root",
                size=1,
                mtime=10_000 - 1900,
                sha256="0" * 64,
            )
        },
    )
    assert evaluate_systemd(SystemdCheck(kind="systemd"), "agent", host).detail == (
        "ActiveState=failed SubState=failed"
    )
    stale = evaluate_file_fresh(
        FileFreshCheck(kind="file_fresh", path="/var/log/a.log", max_age=timedelta(minutes=30)),
        host,
    )
    assert not stale.healthy and stale.detail == "last written 31m40s ago (max 30m00s)"
    missing = evaluate_file_fresh(
        FileFreshCheck(kind="file_fresh", path="/nope", max_age=timedelta(minutes=30)), host
    )
    assert missing.detail == "file does not exist"


def test_snapshot_requests_cover_every_unit_file_and_package() -> None:
    requests = snapshot_requests(load_text(SPEC).fleet)
    assert requests == {
        "h1": SnapshotRequest(
            units=["ollama"],
            files=["/etc/ollama.env", MANAGED_RECORD],
            contents=["/etc/ollama.env", MANAGED_RECORD],
            packages=[],
        )
    }


TWO_HOSTS = """\
version: 1
hosts:
  h1: {address: 198.18.9.1}
  h2: {address: 198.18.9.2}
services:
  a: {host: h1, unit: {description: a, exec_start: /bin/true}}
  b: {host: h2, unit: {description: b, exec_start: /bin/true}}
"""


def test_a_scoped_observation_asks_only_its_hosts_and_closes_no_other_connection() -> None:
    fleet = load_text(TWO_HOSTS).fleet
    whole = observe_request(fleet, ObserveSettings())
    assert [t.name for t in whole.targets] == ["h1", "h2"] and whole.whole_fleet
    scoped = observe_request(fleet, ObserveSettings(hosts=frozenset({"h2", "gone"})))
    assert [t.name for t in scoped.targets] == ["h2"]
    assert set(scoped.reads) == {"h2"} and scoped.reads["h2"].units == ["b"]
    # the worker closes kept connections to hosts a whole-fleet request leaves out:
    # a heal of h2 must not close h1's
    assert not scoped.whole_fleet
