"""What is applied is what was planned: an edit saved between plan and apply never slips in.

The worker applies the exact text (and templates) the plan was made from, carried in
the `LoadedFleet`, never the state file as it is on disk by the time apply runs.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from reconciler.apply.context import Runner
from reconciler.cli.terminal import report
from reconciler.flows.lifecycle import execute_plan
from reconciler.flows.once import plan_once
from reconciler.store.journal import Journal
from state.load import load_fleet
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import lab_spec


def test_an_edit_saved_between_plan_and_apply_is_not_applied(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec = tmp_path / "fleet.yaml"
    template = tmp_path / "agent.tmpl"
    template.write_text("planned template on $host\n")
    extra_file = "      - {path: /etc/agent/extra.conf, template: agent.tmpl}\n"
    text = lab_spec(lab).replace(
        "    health:\n      - {kind: systemd}",
        extra_file + "    health:\n      - {kind: systemd}",
        1,
    )
    spec.write_text(text)
    loaded = load_fleet(spec)
    with httpx.Client(trust_env=False) as client:
        plan = plan_once(loaded, client, targets=["h1"]).plan
        assert any(a.subject == "file /etc/agent/agent.conf" for a in plan.actions)
        # Saved after the plan was shown, before apply: a new value, and a broken file.
        spec.write_text(text.replace("mode = test", "mode = EDITED") + "\nbroken: [\n")
        template.write_text("edited template\n")
        journal = Journal(tmp_path / "journal.db")
        result = execute_plan(loaded, plan, Runner(client, journal, report), "apply", ["h1"])
    assert result is not None
    assert result.hosts["h1"].error is None, result.hosts["h1"].error
    assert fleet_lab.ssh(lab, "h1", "cat /etc/agent/agent.conf") == "mode = test\n"
    assert fleet_lab.ssh(lab, "h1", "cat /etc/agent/extra.conf") == "planned template on h1\n"
