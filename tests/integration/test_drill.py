"""`reconcile drill` on real hosts: measured restarts, recoveries and restore drills
against their objectives, matched to the hosts' own systemd records; a breach fails the
drill, stops it there, and raises a P1."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec, run_reconcile, start_reconcile


def active_since(lab: fleet_lab.Lab, host: str, unit: str) -> float:
    """When the host's systemd last saw `unit` become active, as epoch seconds of this
    machine (the hosts share its kernel, so its monotonic clock, to the microsecond)."""
    out = fleet_lab.ssh(lab, host, f"systemctl show -p ActiveEnterTimestampMonotonic {unit}")
    offset = time.time() - time.monotonic()
    return int(out.strip().split("=")[1]) / 1e6 + offset


def test_a_drill_measures_every_service_against_its_rto(lab: fleet_lab.Lab, tmp_path: Path) -> None:
    spec, journal = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    spec.write_text(lab_spec(lab))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr

    drilled = run_reconcile("drill", str(spec), "--journal", str(journal), "--output", "json")
    assert drilled.returncode == 0, drilled.stdout + drilled.stderr
    steps = json.loads(drilled.stdout)
    assert [(s["kind"], s["subject"]) for s in steps] == [
        ("restart", "agent"),
        ("restart", "ollama"),
        ("recovery", "agent"),
        ("recovery", "ollama"),
    ]
    assert all(s["verdict"] == "pass" for s in steps), steps
    for step in steps:
        assert step["t_fault"] <= step["t_detect"] <= step["t_healthy"]
        assert step["measured_s"] == step["t_healthy"] - step["t_fault"] <= step["objective_s"]
    # The last recovery, by the host's own record: healthy within 1 s of systemd
    # seeing the unit active (the health check's poll and its HTTP answer).
    ollama = steps[-1]
    assert 0 <= ollama["t_healthy"] - active_since(lab, "h2", "ollama") < 1.0, ollama
    history = run_reconcile("history", "--journal", str(journal))
    runs = history.stdout.splitlines()[1:]
    assert len(runs) == 3 and all("converged" in r for r in runs), history.stdout  # 2 heals

    table = run_reconcile("drill", str(spec), "--journal", str(journal))
    assert "DRILL PASSED: 4 step(s)" in table.stdout, table.stdout + table.stderr
    assert "recovery  ollama" in table.stdout


def test_a_breach_fails_the_drill_stops_it_and_raises_a_p1(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec, journal = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    # The agent's RTO of 1 s is not met: its restart, then a health check over SSH.
    spec.write_text(lab_spec(lab).replace("    rto: 30s\n", "    rto: 1s\n", 1))
    done = run_reconcile("--yes", str(spec), "--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr
    drilled = run_reconcile("drill", str(spec), "--journal", str(journal))
    assert drilled.returncode == 1, drilled.stdout + drilled.stderr
    assert "DRILL FAILED at restart agent: 1 step(s)" in drilled.stdout, drilled.stdout
    incidents = json.loads(
        run_reconcile("incidents", "--output", "json", "--journal", str(journal)).stdout
    )
    [drill] = [i for i in incidents if i["family"] == "drill"]
    assert drill["severity"] == "P1" and drill["status"] == "open"
    assert "restart agent" in drill["message"]


def test_watch_runs_the_drill_when_due_and_status_shows_its_table(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec, journal = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    loop = "reconciler: {interval: 5s, probe_interval: 1s, drill_every: 3s}\n"
    spec.write_text(lab_spec(lab) + loop)
    done = run_reconcile("--yes", str(spec), "--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr
    # Counted from the watch's first start: not at once, at the first full pass after.
    watch = start_reconcile("watch", str(spec), "--journal", str(journal), "--max-seconds", "60")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = run_reconcile("status", str(spec), "--journal", str(journal))
            if "DRILL PASSED" in status.stdout:
                break
            time.sleep(2)
        assert "last DR drill" in status.stdout and "DRILL PASSED: 4 step(s)" in status.stdout, (
            status.stdout
        )
        assert "recovery  agent" in status.stdout
    finally:
        watch.terminate()
        watch.wait(timeout=90)
