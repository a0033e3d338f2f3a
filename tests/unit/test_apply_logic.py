"""Pure parts of apply: --target filtering, the deploy request, and the health gate's timing."""

from __future__ import annotations

from reconciler.apply.deploys import deploy_work, staged
from reconciler.apply.gate import health_gate
from reconciler.engine.diff import diff
from reconciler.engine.plan import Plan, filter_plan, make_plan
from reconciler.hosts.observation import CheckResult, FleetState, HostState
from reconciler.hosts.protocol import RecordWork, ServiceWork
from state.load import LoadedFleet
from tests.unit.helpers import ideal_observation, load_text

SPEC = """\
version: 1
hosts:
  h1: {address: 198.18.9.1}
  h2: {address: 198.18.9.2}
services:
  a: {host: h1, unit: {description: a, exec_start: /bin/a}, health: [{kind: systemd}], rto: 5s}
  b: {host: h1, unit: {description: b, exec_start: /bin/b}}
  c: {host: h2, unit: {description: c, exec_start: /bin/c}, health: [{kind: systemd}], rto: 60s}
"""


def fresh_plan() -> tuple[LoadedFleet, Plan]:
    loaded = load_text(SPEC)
    empty = FleetState(hosts={h: HostState(name=h, reachable=True, now=1) for h in ("h1", "h2")})
    return loaded, make_plan(loaded, empty, diff(loaded, empty))


def test_target_host_and_service() -> None:
    _, plan = fresh_plan()
    only_h2 = filter_plan(plan, ["h2"])
    assert [h.name for h in only_h2.hosts] == ["h2"]
    assert {a.service for a in only_h2.actions} == {"c"}
    only_b = filter_plan(plan, ["h1/b"])
    assert {a.service for a in only_b.actions} == {"b"}
    assert only_b.summary.create == len(only_b.actions) == 3
    assert filter_plan(plan, []) is plan


def test_deploy_work_lists_only_planned_services() -> None:
    loaded, plan = fresh_plan()
    work = deploy_work(loaded, filter_plan(plan, ["h1/a", "h2"]))
    assert work == {
        "h1": [
            RecordWork(services=["a", "b"], backups=[]),
            ServiceWork(name="a", restart=False, stale=["/etc/systemd/system/a.service"]),
        ],
        "h2": [
            RecordWork(services=["c"], backups=[]),
            ServiceWork(name="c", restart=False, stale=["/etc/systemd/system/c.service"]),
        ],
    }  # the record is written once: nothing is being removed; the missing unit files
    # are written without being read again


def test_staged_work_deploys_the_held_services_without_starting_them() -> None:
    """A promotion stages the failover services while their data is restored: their
    deploy runs with `start` off; everything else in the work is untouched."""
    loaded, plan = fresh_plan()
    work = staged(deploy_work(loaded, plan), ["a"])
    starts = {
        i.name: i.start for items in work.values() for i in items if isinstance(i, ServiceWork)
    }
    assert starts == {"a": False, "b": True, "c": True}
    assert [type(i) for i in work["h1"]] == [type(i) for i in deploy_work(loaded, plan)["h1"]]


class FakeClock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps.append(round(seconds, 3))


def test_health_gate_fails_a_host_after_its_rto_with_the_last_answer() -> None:
    loaded = load_text(SPEC)
    clock = FakeClock()
    ideal = ideal_observation(loaded)
    sick = ideal.model_copy(
        update={
            "health": {
                "a": (
                    CheckResult(check="systemd active", healthy=False, detail="ActiveState=failed"),
                ),
                "c": (CheckResult(check="systemd active", healthy=True, detail="ok"),),
            }
        }
    )
    reports: list[str] = []
    asked: list[set[str]] = []

    def observe(hosts: set[str]) -> FleetState:
        asked.append(hosts)
        return sick

    failed = health_gate(
        loaded, {"h1": ["a", "b"], "h2": ["c"]}, observe, reports.append, clock, clock.sleep
    )
    assert failed == {"h1": "a not healthy within its RTO (5s): systemd active: ActiveState=failed"}
    assert clock.now == 5.0  # until the 5 s RTO ran out, no longer
    # sub-second first polls (services start in tenths of a second), then once a second
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 0.5]
    assert "h2: c healthy after 0.0s" in reports
    # each poll reads only the hosts still waited on: h2 was healthy at the first
    assert asked[0] == {"h1", "h2"} and all(hosts == {"h1"} for hosts in asked[1:])


def test_health_gate_gives_up_at_once_on_a_host_that_became_unreachable() -> None:
    loaded, clock = load_text(SPEC), FakeClock()
    down = HostState(name="h2", reachable=False, error="no SSH answer within 5s")
    healthy = CheckResult(check="systemd active", healthy=True, detail="ok")
    ideal = ideal_observation(loaded)
    cut = ideal.model_copy(
        update={"hosts": {**ideal.hosts, "h2": down}, "health": {"a": (healthy,)}}
    )
    failed = health_gate(
        loaded, {"h1": ["a"], "h2": ["c"]}, lambda _hosts: cut, lambda _m: None, clock, clock.sleep
    )
    assert failed == {
        "h2": "c: host became unreachable during the health gate: no SSH answer within 5s"
    }
    assert clock.now == 0.0  # not the 60 s RTO of c: no wait at all


def test_deploy_work_names_the_files_the_plan_found_missing_or_different() -> None:
    loaded = load_text(
        SPEC.replace(
            "  b: {host: h1, unit: {description: b, exec_start: /bin/b}}",
            "  b: {host: h1, unit: {description: b, exec_start: /bin/b},"
            " config_files: [{path: /etc/b.conf, content: x}]}",
        )
    )
    empty = FleetState(hosts={h: HostState(name=h, reachable=True, now=1) for h in ("h1", "h2")})
    work = deploy_work(loaded, make_plan(loaded, empty, diff(loaded, empty)))
    b = next(i for i in work["h1"] if isinstance(i, ServiceWork) and i.name == "b")
    assert b.stale == ["/etc/b.conf", "/etc/systemd/system/b.service"]
    converged = ideal_observation(loaded)  # nothing differs: nothing is taken as stale
    assert deploy_work(loaded, make_plan(loaded, converged, diff(loaded, converged))) == {}
