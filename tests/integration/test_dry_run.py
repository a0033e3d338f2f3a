"""`reconcile --dry-run` against real hosts: fresh, converged, edited, cut off; never changes anything."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.by_hand import changed_lines, converge_by_hand, footprint, settled_footprint
from tests.json_schemas import check


def dry_run(spec: Path, output: str = "json") -> tuple[int, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "--dry-run", "--output", output, str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if output != "json":
        return done.returncode, done.stdout
    plan = json.loads(done.stdout)
    check("plan", plan)  # what real hosts gave, against reconciler/cli/schemas
    return done.returncode, plan


def actions(plan: dict[str, Any], host: str) -> list[tuple[str, str, str]]:
    entry = next(h for h in plan["hosts"] if h["name"] == host)
    return [(a["action"], a["kind"], a["subject"]) for a in entry["actions"]]


def test_dry_run_scenarios_on_real_hosts(lab: fleet_lab.Lab, spec_file: Path) -> None:
    # 1. Fresh hosts plan every create, and the dry run changes nothing on them.
    before = {h: settled_footprint(lab, h) for h in ("h1", "h2")}
    code, plan = dry_run(spec_file)
    assert code == 2
    assert {a for h in ("h1", "h2") for a, _, _ in actions(plan, h)} == {"create"}
    assert ("create", "binary", "binary /usr/local/bin/agent") in actions(plan, "h1")
    assert ("create", "config", "file /etc/agent/agent.conf") in actions(plan, "h1")
    assert ("create", "unit_file", "unit ollama.service") in actions(plan, "h2")
    assert ("create", "model_pull", "model llama3.2:3b") in actions(plan, "h2")
    assert plan["summary"]["create"] == len(actions(plan, "h1")) + len(actions(plan, "h2"))
    for host in ("h1", "h2"):
        after = footprint(lab, host)
        assert after == before[host], f"{host}:\n{changed_lines(before[host], after)}"

    # 2. Hosts made to match the spec (by hand, over ssh) plan nothing: exit 0.
    converge_by_hand(lab, load_fleet(spec_file))
    code, text = dry_run(spec_file, "text")
    assert code == 0, text
    assert text.rstrip().endswith("No changes. The fleet matches the desired state.")

    # 3. A unit file edited by hand plans `~` with its diff (and a restart).
    fleet_lab.ssh(
        lab, "h1", "sed -i 's/--interval 1/--interval 9/' /etc/systemd/system/agent.service"
    )
    code, plan = dry_run(spec_file)
    assert code == 2
    assert actions(plan, "h1") == [
        ("update", "unit_file", "unit agent.service"),
        ("update", "restart", "restart agent.service"),
    ]
    edit = next(h for h in plan["hosts"] if h["name"] == "h1")["actions"][0]
    assert edit["reason"] == "unit file differs: ExecStart changed"
    assert (
        "-ExecStart=/usr/bin/python3 /usr/local/bin/agent --name a --log /var/log/agent.log --interval 9"
        in edit["diff"]
    )
    assert actions(plan, "h2") == []

    # 4. A cut link plans `!` for that host while the other is still planned.
    fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")
    fleet_lab.cut_link(lab, "h1")
    try:
        code, text = dry_run(spec_file, "text")
    finally:
        fleet_lab.restore_link(lab, "h1")
    assert code == 3  # a host not observed: the plan is partial (3 wins over 2)
    assert f"host h1 ({lab.host('h1').address})  [unreachable]" in text
    assert "  ! host h1  unreachable: " in text
    assert "~ start ollama.service  ActiveState=inactive" in text
    assert text.rstrip().endswith("1 host unreachable.")


def test_a_hung_host_is_an_observed_fact_and_costs_one_timeout(
    lab: fleet_lab.Lab, spec_file: Path
) -> None:
    fleet_lab.freeze_ssh(lab, "h2")
    try:
        started = time.monotonic()
        code, plan = dry_run(spec_file)
        elapsed = time.monotonic() - started
    finally:
        fleet_lab.thaw_ssh(lab, "h2")
    assert code == 3
    hung = next(h for h in plan["hosts"] if h["name"] == "h2")
    assert not hung["reachable"]
    assert (
        hung["actions"][0]["kind"] == "unreachable"
        and "no SSH answer within 5s (host slow or hung)" in hung["actions"][0]["reason"]
    )
    assert next(h for h in plan["hosts"] if h["name"] == "h1")["reachable"]
    assert elapsed < 90  # it ends (by the connect timeout): a hung host would hold it forever
