"""Every `-o json` document has a JSON Schema in reconciler/cli/schemas/, and what the
commands print is valid against it (the integration tests check the plan and status of
real hosts against the same schemas)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest

from backups.restic_repo import Snapshot
from reconciler.cli.main import main
from reconciler.cli.status_command import StatusFacts, status_document
from reconciler.engine.changes import Action, ChangeKind
from reconciler.engine.diff import diff
from reconciler.engine.drill_step import DrillStep
from reconciler.engine.plan import make_plan, plan_to_json
from reconciler.events.bus import Event
from reconciler.flows.incident_desk import IncidentDesk
from reconciler.flows.plan import Planned
from reconciler.hosts.observation import FleetState, HostState
from reconciler.render.backup_text import snapshots_json
from reconciler.store.incidents import LocalIncidents
from reconciler.store.journal import Journal
from reconciler.store.memory import LocalMemory
from reconciler.store.suspension import Suspension
from tests.json_schemas import SCHEMAS, check
from tests.unit.helpers import ideal_observation, load_text
from tests.unit.test_copies import with_copy
from tests.unit.test_spec import BASE


def fresh_plan() -> dict[str, Any]:
    loaded = load_text(BASE)
    empty = FleetState(
        hosts={h: HostState(name=h, reachable=True, now=1) for h in loaded.fleet.hosts}
    )
    return plan_to_json(make_plan(loaded, empty, diff(loaded, empty)))


def test_every_schema_is_a_valid_schema() -> None:
    names = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    assert names == [
        f"{n}.schema.json"
        for n in (
            "backup-check",
            "backup-drill",
            "backup-list",
            "doctor",
            "drill",
            "history",
            "incidents",
            "plan",
            "status",
            "validate",
        )
    ]
    for path in SCHEMAS.glob("*.schema.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_the_plan_schema_names_every_action_and_kind_the_engine_has() -> None:
    schema = json.loads((SCHEMAS / "plan.schema.json").read_text())
    action = schema["properties"]["hosts"]["items"]["properties"]["actions"]["items"]
    assert action["properties"]["action"]["enum"] == list(get_args(Action))
    assert action["properties"]["kind"]["enum"] == list(get_args(ChangeKind))


def test_a_plan_is_valid_and_a_broken_one_is_not() -> None:
    plan = fresh_plan()
    assert plan["pending"] and plan["hosts"][0]["actions"]
    check("plan", plan)
    plan["hosts"][0]["actions"][0]["action"] = "explode"
    with pytest.raises(jsonschema.ValidationError):
        check("plan", plan)


def test_validate_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("version: 1\nhosts:\n  a:\n    adress: 198.18.0.2\n")
    assert main(["validate", str(bad), "-o", "json"]) == 1
    check("validate", json.loads(capsys.readouterr().out))
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    assert main(["validate", str(good), "-o", "json"]) == 0
    check("validate", json.loads(capsys.readouterr().out))


def test_history_and_incidents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = Journal(tmp_path / "journal.db")
    run = journal.start_run("fleet.yaml", "0" * 64, None, None, "apply", {})
    journal.finish_run(run, "failed", "h1: refused")
    IncidentDesk(LocalIncidents(journal), lambda: None)(
        Event("P1", "escalation", "ollama crash loop", "hermes", "ollama", at=time.time())
    )
    journal.close()
    path = str(tmp_path / "journal.db")
    assert main(["history", "--journal", path, "-o", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert runs[0]["outcome"] == "failed"
    check("history", runs)
    assert main(["incidents", "--journal", path, "-o", "json"]) == 0
    incidents = json.loads(capsys.readouterr().out)
    assert incidents[0]["severity"] == "P1"
    check("incidents", incidents)


def test_backup_list_and_drill() -> None:
    loaded = load_text(with_copy())
    now = datetime.now(UTC)
    snap = Snapshot("a" * 64, now - timedelta(hours=2), "kimi", ("db",), ("/srv/db",))
    listed = snapshots_json(loaded, {"db": [snap]}, {"db": {snap.id: "recorded"}})
    assert listed[0]["rpo_breached"] and listed[0]["snapshots"][0]["provenance"] == "recorded"
    check("backup-list", listed)
    check("backup-list", snapshots_json(loaded, {"db": []}, None, "offsite"))
    step = DrillStep("restart", "agent", "RTO 1m", 60.0, 3.2, "pass", 1.0, 2.0, 4.2)
    check("drill", [step.as_json()])


def test_status_document(tmp_path: Path) -> None:
    loaded = load_text(BASE)
    observed = ideal_observation(loaded)
    plan = make_plan(loaded, observed, diff(loaded, observed))
    journal = Journal(tmp_path / "journal.db")
    suspended = Suspension(LocalMemory(journal)).suspend("maintenance")
    planned = Planned(loaded, observed, plan, None)
    facts = StatusFacts("fleet.yaml", loaded, planned, journal, None, None, None, [], suspended)
    document = status_document(facts)
    assert document["suspended"]["reason"] == "maintenance"
    assert {row["service"] for row in document["services"]} == set(loaded.fleet.services)
    check("status", json.loads(json.dumps(document, default=str)))


def test_backup_check_and_drill_documents() -> None:
    from dataclasses import asdict

    from reconciler.repositories.verify import DrillResult

    check(
        "backup-check", {"policy": "db", "copy": None, "ok": True, "subset": "3/7", "error": None}
    )
    result = DrillResult("db", "a" * 64, 2.5, 12, 3600.0, [])
    check("backup-drill", {"copy": "offsite", "ok": result.ok, **asdict(result)})
