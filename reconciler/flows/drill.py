"""`reconcile drill`: the runbook's monthly DR test, measured against the RTO/RPO table.

Steps, one fault at a time, stopping at the first that breaches its objective:
1. restart: `systemctl restart` each service; time until it is healthy, against its RTO;
2. recovery: stop each service as a fault would; the reconciler heals it (a plan and
   an apply of that host, journaled like any run); detection plus heal, against the RTO;
3. restore: a restore drill of each backup policy (restore, verify); the restore time
   against the policy's RTO, the newest snapshot's age against its RPO;
4. channel: the backup host is reachable from the primary and from the controller.

Each step records `t_fault`, `t_detect`, `t_healthy` (controller clock, epoch seconds)
and is journaled as an event; a breach raises `drill_failed` (P1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import httpx

from reconciler.apply.context import Report, Runner
from reconciler.channels.send import send_test_messages
from reconciler.engine.drill_step import DrillStep, Verdict
from reconciler.events.bus import Event, EventBus
from reconciler.flows.lifecycle import execute_plan
from reconciler.flows.mover import MoveFailed, Mover
from reconciler.flows.moves import switchover
from reconciler.flows.once import plan_once
from reconciler.hosts.commands import connects_to, reachable, unit_action
from reconciler.hosts.observe import ObserveSettings, observe
from reconciler.hosts.probes import probe_http, probe_tcp
from reconciler.repositories.in_place import newest_snapshot
from reconciler.repositories.verify import run_drill
from reconciler.store.failover_state import placed
from reconciler.store.journal import EventRecord, Journal
from reconciler.store.ledger import Ledger
from state.load import LoadedFleet
from state.spec.hosts import Host
from state.spec.services import HttpCheck, Service, TcpCheck

POLL_S = 0.2
NO_UNIT_TO_FAULT = "no unit: nothing runs, so nothing to restart or stop"


def _healthy(loaded: LoadedFleet, client: httpx.Client, service: str) -> bool:
    """All of the service's checks pass: HTTP and TCP checks asked directly (a poll of
    milliseconds), the others through an observation of the hosts (over SSH)."""
    spec = loaded.fleet.services[service]
    address = loaded.fleet.hosts[spec.host].address
    direct = [c for c in spec.health if isinstance(c, HttpCheck | TcpCheck)]
    if direct and len(direct) == len(spec.health):
        return all(
            (
                probe_http(client, c, address)
                if isinstance(c, HttpCheck)
                else probe_tcp(c, address)
            ).healthy
            for c in direct
        )
    observed = observe(loaded, client, ObserveSettings(health_only=True))
    host = observed.hosts[loaded.fleet.services[service].host]
    results = observed.health.get(service, ())
    return host.reachable and bool(results) and all(r.healthy for r in results)


def _wait_healthy(
    loaded: LoadedFleet, client: httpx.Client, service: str, limit: float
) -> float | None:
    """Epoch time the service is first seen healthy, or None within `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if _healthy(loaded, client, service):
            return time.time()
        time.sleep(POLL_S)
    return None


def _timed_step(
    kind: Literal["restart", "recovery", "failover"],
    service: str,
    rto: float,
    t_fault: float,
    t_detect: float | None,
    t_healthy: float | None,
    detail: str = "",
) -> DrillStep:
    measured = None if t_healthy is None else t_healthy - t_fault
    verdict: Verdict = "pass" if measured is not None and measured <= rto else "breach"
    return DrillStep(
        kind, service, f"RTO {rto:g}s", rto, measured, verdict, t_fault, t_detect, t_healthy, detail
    )


def _checked(
    kind: Literal["restore", "channel"],
    subject: str,
    objective: str,
    objective_s: float | None,
    measured: float | None,
    ok: bool,
    detail: str = "",
    bad: Verdict = "failed",
) -> DrillStep:
    """A step that is a check: it passes, or it is `bad` (a breach of an objective, or a
    failure to do what it tried)."""
    verdict: Verdict = "pass" if ok else bad
    return DrillStep(kind, subject, objective, objective_s, measured, verdict, detail=detail)


class Drill:
    def __init__(
        self,
        loaded: LoadedFleet,
        journal: Journal,
        client: httpx.Client,
        bus: EventBus,
        report: Report,
        guard: Callable[[list[str]], None] | None = None,
        game_day: LoadedFleet | None = None,
    ) -> None:
        self.loaded, self.journal, self.client = loaded, journal, client
        self.bus, self.report, self.guard = bus, report, guard
        self.game_day = game_day  # the spec as written: switch over and back, measured

    def run(self) -> list[DrillStep]:
        steps: list[DrillStep] = []
        stages = [self._restarts, self._recoveries, self._restores, self._channels]
        if self.game_day is not None:
            stages.append(self._switch_over_and_back)
        for each in stages:
            for step in each():
                steps.append(step)
                self._record(step)
                if step.verdict in ("breach", "failed"):
                    self._finish(steps)
                    return steps  # one fault at a time; stop at the first breach
        self._finish(steps)
        return steps

    def _host_of(self, service: str) -> Host:
        fleet = self.loaded.fleet
        return fleet.hosts[fleet.services[service].host]

    def _services(self) -> list[tuple[str, Service]]:
        """The spec's services where they run now (not the reconciler's own guards)."""
        written = self.loaded.written.services
        return sorted((n, s) for n, s in self.loaded.fleet.services.items() if n in written)

    def _restarts(self) -> list[DrillStep]:
        return self._each_service("restart")

    def _recoveries(self) -> list[DrillStep]:
        return self._each_service("recovery")

    def _each_service(self, kind: Literal["restart", "recovery"]) -> list[DrillStep]:
        """One fault per service that has a unit to fault; a service without one (tools
        a host needs, installed and nothing to run) is listed as skipped, with why."""
        out = []
        for name, service in self._services():
            if service.unit is None:
                out.append(
                    DrillStep(kind, name, "-", None, None, "skipped", detail=NO_UNIT_TO_FAULT)
                )
                continue
            out.append(self._fault(kind, name, service))
            if out[-1].verdict != "pass":
                break
        return out

    def _fault(
        self, kind: Literal["restart", "recovery"], name: str, service: Service
    ) -> DrillStep:
        """restart: `systemctl restart`, timed to healthy. recovery: `systemctl stop` as a
        fault would, then a plan and a journaled heal of its host, timed to healthy."""
        rto = service.rto.total_seconds()
        host = self._host_of(name)
        self.report(f"drill: {kind} {name} (RTO {rto:g}s)")
        t_fault = time.time()
        done = unit_action(host, "restart" if kind == "restart" else "stop", name + ".service")
        if not done.ok:
            return DrillStep(
                kind, name, f"RTO {rto:g}s", rto, None, "failed", t_fault, detail=done.error
            )
        if kind == "restart":
            t_healthy = _wait_healthy(self.loaded, self.client, name, rto + 5)
            return _timed_step(kind, name, rto, t_fault, t_fault, t_healthy)
        # Watched from the fault on, alongside the heal: healthy is when it answers,
        # not when the run (its gate and verification) has finished.
        with ThreadPoolExecutor(max_workers=1) as pool:
            watched = pool.submit(_wait_healthy, self.loaded, self.client, name, rto + 5)
            plan = plan_once(self.loaded, self.client, targets=[service.host]).plan
            t_detect = time.time()
            drifted = any(a.service == name for a in plan.actions)
            runner = Runner(self.client, self.journal, self.report, guard=self.guard)
            execute_plan(self.loaded, plan, runner, "drill", [service.host])
            t_healthy = watched.result()
        detail = "" if drifted else "the plan did not see the fault"
        return _timed_step(kind, name, rto, t_fault, t_detect, t_healthy, detail)

    def _restores(self) -> list[DrillStep]:
        out = []
        now = time.time()
        for name, policy in sorted(self.loaded.fleet.backups.items()):
            rpo = policy.rpo.total_seconds()
            newest = newest_snapshot(self.loaded, name, Ledger(self.journal))
            age = None if newest is None else now - newest.time.timestamp()
            rpo_ok = age is not None and age <= rpo
            detail = "" if newest else "no snapshot"
            subject = f"{name} (data age)"
            out.append(
                _checked("restore", subject, f"RPO {rpo:g}s", rpo, age, rpo_ok, detail, "breach")
            )
            if not rpo_ok:
                return out
            self.report(f"drill: restore drill of {name}")
            ledger = Ledger(self.journal)
            result = run_drill(self.loaded, name, ledger)
            if result.ok:  # a newer generation is proven: older held snapshots may go
                ledger.drilled(self.loaded.fleet, name, result.snapshot)
            verdict: Verdict = "pass" if result.ok else ("failed" if result.problems else "breach")
            rto = result.rto_seconds
            out.append(
                DrillStep(
                    "restore",
                    name,
                    f"RTO {rto:g}s" if rto is not None else "restores",
                    rto,
                    result.seconds,
                    verdict,
                    detail="; ".join(result.problems),
                )
            )
            if verdict != "pass":
                return out
        return out + self._service_rpos(now)

    def _service_rpos(self, now: float) -> list[DrillStep]:
        """A service's RPO against the newest snapshot of every policy on its host."""
        out = []
        fleet = self.loaded.fleet
        for name, service in sorted(fleet.services.items()):
            if service.rpo is None:
                continue
            rpo = service.rpo.total_seconds()
            policies = [p for p, policy in fleet.backups.items() if policy.host == service.host]
            newest = [
                s
                for p in policies
                if (s := newest_snapshot(self.loaded, p, Ledger(self.journal))) is not None
            ]
            ages = [now - s.time.timestamp() for s in newest]
            age = max(ages) if ages and len(newest) == len(policies) else None
            ok = age is not None and age <= rpo
            detail = "" if policies else f"no backup policy on {service.host}"
            subject = f"{name} (data age)"
            out.append(
                _checked("restore", subject, f"RPO {rpo:g}s", rpo, age, ok, detail, "breach")
            )
            if not ok:
                return out
        return out

    def _channels(self) -> list[DrillStep]:
        return self._failover_paths() + self._notification_channels()

    def _notification_channels(self) -> list[DrillStep]:
        """The runbook's "Test 4": every notification channel answers a test message."""
        notifications = self.loaded.written.notifications
        if notifications is None:
            return []
        out = []
        for name, ok, note in send_test_messages(
            notifications, sorted(notifications.channels), self.client
        ):
            out.append(_checked("channel", f"notify {name}", "answers", None, None, ok, note))
            if not ok:
                return out
        return out

    def _failover_paths(self) -> list[DrillStep]:
        failover = self.loaded.written.failover
        if failover is None:
            return []
        fleet = self.loaded.written
        backup = fleet.hosts[failover.backup]
        primary = fleet.hosts[failover.primary]
        out = []
        for origin, from_controller in (("controller", True), (failover.primary, False)):
            started = time.monotonic()
            if from_controller:
                answer = reachable(backup, 15.0)
            else:
                answer = connects_to(primary, backup.address, backup.ssh_port)
            took = time.monotonic() - started
            subject = f"{origin} -> {failover.backup}"
            out.append(
                _checked("channel", subject, "reachable", None, took, answer.ok, answer.error)
            )
        return out

    def _switch_over_and_back(self) -> list[DrillStep]:
        """The runbook's failover game day: a planned switchover to the backup, then back,
        each timed until every failover service is healthy where it now runs."""
        assert self.game_day is not None
        failover = self.game_day.written.failover
        if failover is None:
            return [
                DrillStep("failover", "-", "-", None, None, "failed", detail="no failover section")
            ]
        mover = Mover(
            self.game_day, self.journal, self.client, self.bus, self.report, guard=self.guard
        )
        rto = max(self.game_day.fleet.services[s].rto.total_seconds() for s in failover.services)
        out = []
        for target in (failover.backup, failover.primary):
            subject = f"{', '.join(failover.services)} -> {target}"
            self.report(f"drill: game day: switch {subject}")
            t_fault = time.time()
            try:
                switchover(mover, target, "DR drill game day")
            except MoveFailed as exc:
                out.append(
                    DrillStep(
                        "failover",
                        subject,
                        f"RTO {rto:g}s",
                        rto,
                        None,
                        "failed",
                        t_fault,
                        detail=str(exc),
                    )
                )
                return out
            running = placed(self.game_day, self.journal)
            seen = [
                _wait_healthy(running, self.client, name, rto + 5) for name in failover.services
            ]
            t_healthy = None if None in seen else max(t for t in seen if t is not None)
            out.append(_timed_step("failover", subject, rto, t_fault, t_fault, t_healthy))
            if out[-1].verdict != "pass":
                return out
        return out

    def _record(self, step: DrillStep) -> None:
        measured = "-" if step.measured_s is None else f"{step.measured_s:.2f}s"
        self.report(
            f"drill: {step.kind} {step.subject}: {measured} ({step.objective}) {step.verdict}"
        )

    def _finish(self, steps: list[DrillStep]) -> None:
        bad = [s for s in steps if s.verdict in ("breach", "failed")]
        context = {"steps": [s.as_json() for s in steps]}
        if bad:
            first = bad[0]
            measured = "-" if first.measured_s is None else f"{first.measured_s:.2f}s"
            message = (
                f"DR drill {first.verdict}: {first.kind} {first.subject} took {measured} "
                f"against {first.objective}{': ' + first.detail if first.detail else ''}"
            )
            self.bus.emit(Event("P1", "drill_failed", message, context=context))
        else:
            self.bus.emit(
                Event("P3", "drill_passed", f"DR drill passed: {len(steps)} steps", context=context)
            )


def last_dr_drill(journal: Journal) -> EventRecord | None:
    """The newest DR drill's event (backup restore drills are about one policy; this one
    is about the fleet and carries its steps)."""
    found = [
        e
        for kind in ("drill_passed", "drill_failed")
        for e in journal.events(50, kind)
        if e.service is None and "steps" in e.context
    ]
    return max(found, key=lambda e: e.at, default=None)


def steps_of(event: EventRecord) -> list[DrillStep]:
    return [DrillStep(**step) for step in event.context["steps"]]
