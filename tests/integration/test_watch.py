"""`reconcile watch` on real hosts: drift is healed, edits are applied, bad edits are refused,
and a service that never starts backs off with growing intervals and escalates."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.store.journal import EventRecord, Journal
from state.layout import unit_path
from state.load import load_fleet
from state.render import render_unit
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import ROOT, SLOW_TO_START, lab_spec, workers_of

SETTINGS = """\
reconciler:
  interval: 15s
  probe_interval: 1s
  debounce: 1s
  backoff_initial: 1s
  escalate_after_attempts: 3
"""
CRASHY = """\
  crashy:
    host: h2
    unit: {description: always fails, exec_start: /bin/false, restart: "no"}
    health: [{kind: systemd}]
    rto: 3s
"""


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Watch:
    def __init__(self, lab: fleet_lab.Lab, base: Path) -> None:
        self.lab, self.spec, self.journal_path = lab, base / "fleet.yaml", base / "journal.db"
        self.log = base / "watch.log"
        self.spec.write_text(lab_spec(lab, SETTINGS))
        converge = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                str(self.spec),
                "--yes",
                "--journal",
                str(self.journal_path),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert converge.returncode == 0, converge.stdout + converge.stderr
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "watch",
                str(self.spec),
                "--journal",
                str(self.journal_path),
                "--max-seconds",
                "400",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
            start_new_session=True,  # its own process group, as under a service manager
        )

    def ssh(self, host: str, command: str) -> str:
        return fleet_lab.ssh(self.lab, host, command, check=False)

    def events(self, kind: str) -> list[EventRecord]:
        journal = Journal(self.journal_path)
        try:
            return journal.events(200, kind)
        finally:
            journal.close()


@pytest.fixture(scope="module")
def watch(lab: fleet_lab.Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watch]:
    running = Watch(lab, tmp_path_factory.mktemp("watch"))
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
            running.proc.wait(timeout=120)


def test_stopped_service_comes_back(watch: Watch) -> None:
    """Stopped by hand, nothing else changed: healed by `systemctl start` alone (the fast
    path), journaled like any operation, with no deploy cycle in that run."""
    watch.ssh("h1", "systemctl stop agent.service")
    assert watch.ssh("h1", "systemctl is-active agent.service").strip() != "active"
    wait_for(
        "agent active again",
        lambda: watch.ssh("h1", "systemctl is-active agent.service").strip() == "active",
        30,
    )
    journal = Journal(watch.journal_path)
    try:
        wait_for("the heal run journaled", lambda: journal.runs(1)[0].outcome, 30)
        run = journal.runs(1)[0]
        steps = [(host, service, step, status) for host, service, step, status, _ in
                 journal.results(run.id)]  # fmt: skip
    finally:
        journal.close()
    assert run.outcome == "converged", run.error
    assert steps == [
        ("h1", "agent", "fast start | agent: systemctl start -- agent.service", "changed")
    ]


def test_unit_file_edited_by_hand_is_restored(watch: Watch) -> None:
    watch.ssh("h1", "sed -i 's/--interval 1/--interval 7/' /etc/systemd/system/agent.service")
    unit = load_fleet(watch.spec).fleet.services["agent"].unit
    assert unit is not None
    wait_for(
        "unit file restored",
        lambda: watch.ssh("h1", f"cat {unit_path('agent')}") == render_unit(unit),
        45,
    )


def test_deleted_model_is_pulled_again(watch: Watch, lab: fleet_lab.Lab) -> None:
    url = f"http://{lab.host('h2').address}:11434"
    httpx.request(
        "DELETE", f"{url}/api/delete", json={"model": "llama3.2:3b"}, timeout=5
    ).raise_for_status()

    def present() -> bool:
        names = {m["name"] for m in httpx.get(f"{url}/api/tags", timeout=5).json()["models"]}
        return "llama3.2:3b" in names

    wait_for("model pulled again", present, 30)


def test_state_file_edit_reaches_the_host_without_a_restart(watch: Watch) -> None:
    watch.spec.write_text(watch.spec.read_text().replace("mode = test", "mode = watched"))
    wait_for(
        "config applied",
        lambda: "mode = watched" in watch.ssh("h1", "cat /etc/agent/agent.conf"),
        20,
    )
    assert watch.proc.poll() is None  # the same daemon process did it


def test_broken_edit_changes_nothing_and_is_reported(watch: Watch) -> None:
    good = watch.spec.read_text()
    watch.spec.write_text(
        good.replace("mode = watched", "mode = broken").replace(
            "restart: always", "restart: sometimes"
        )
    )
    rejected = wait_for("spec_rejected event", lambda: watch.events("spec_rejected"), 15)
    assert "services.agent.unit.restart" in rejected[0].message
    assert f"{watch.spec}:" in rejected[0].message
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler.cli",
            "status",
            str(watch.spec),
            "--journal",
            str(watch.journal_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "loop: state file REJECTED, last good spec in force:" in status.stdout
    time.sleep(3)
    assert "mode = watched" in watch.ssh("h1", "cat /etc/agent/agent.conf")
    watch.spec.write_text(good)


def test_failing_service_backs_off_with_growing_intervals_and_escalates(watch: Watch) -> None:
    watch.spec.write_text(watch.spec.read_text().replace("models:\n", CRASHY + "models:\n"))
    escalations = wait_for(
        "an escalation event",
        lambda: [e for e in watch.events("escalation") if e.service == "crashy"],
        90,
    )
    assert escalations[0].severity == "P1"
    failures = sorted(
        (e for e in watch.events("heal_failed") if e.service == "crashy"), key=lambda e: e.at
    )
    delays = [e.context["retry_in"] for e in failures]
    assert delays[:3] == [1, 2, 4]
    gaps = [b.at - a.at for a, b in itertools.pairwise(failures)]
    assert all(
        gap >= delay for gap, delay in zip(gaps, delays, strict=False)
    )  # never sooner than the backoff
    assert "crashy not healthy within its RTO (3s)" in failures[0].message


def test_sigterm_to_the_process_group_mid_run_lets_the_run_finish(watch: Watch) -> None:
    """What a service manager's stop does (SIGTERM to the whole group, the SSH worker
    included): the run under way completes, its health gate too, the run is journaled as
    finished, and the daemon exits 0.

    The edit adds a service healthy only 3 s after it starts, so the run is surely under
    way when the signal lands: a config edit alone is deployed in under half a second,
    quicker than this test looks."""
    spec = re.sub(r"mode = \w+", "mode = stopping", watch.spec.read_text())
    spec = spec.replace(CRASHY, "")  # earlier tests' crashing service goes
    edited = time.time()  # a run started before (a retry of the crashing service) is not it
    watch.spec.write_text(spec.replace("services:\n", "services:\n" + SLOW_TO_START, 1))

    def deploying() -> bool:
        journal = Journal(watch.journal_path)
        try:
            runs = journal.runs(1)
        finally:
            journal.close()
        return bool(
            runs
            and runs[0].started >= edited
            and runs[0].outcome is None
            and workers_of(watch.proc.pid)
        )

    wait_for("a run under way", deploying, 30)
    os.killpg(watch.proc.pid, signal.SIGTERM)
    assert watch.proc.wait(timeout=120) == 0
    assert "stopped" in watch.log.read_text().splitlines()[-1]
    journal = Journal(watch.journal_path)
    last = journal.runs(1)[0]
    journal.close()
    assert last.outcome == "converged", (last.outcome, last.error)
    assert watch.ssh("h1", "cat /etc/agent/agent.conf") == "mode = stopping\n"
    assert watch.ssh("h1", "systemctl is-active slow.service").strip() == "active"
