"""Removals: planned from the host's own record, never guessed; applied between two
writes of that record."""

from __future__ import annotations

from reconciler.apply.deploys import deploy_work
from reconciler.engine.diff import diff
from reconciler.engine.plan import make_plan
from reconciler.hosts.observation import FileState, FleetState
from reconciler.hosts.protocol import RecordWork, RemoveBackupWork, RemoveServiceWork
from state.layout import MANAGED_RECORD
from state.managed import Managed, parse_record, render_record
from tests.unit.helpers import NOW, ideal_observation, load_text

SPEC = """\
version: 1
hosts:
  h1: {address: 198.18.9.1}
services:
  kept: {host: h1, unit: {description: kept, exec_start: /bin/kept}}
"""


def with_record(observed: FleetState, text: str | None) -> FleetState:
    host = observed.hosts["h1"]
    files = dict(host.files)
    if text is not None:
        files[MANAGED_RECORD] = FileState(
            mode="0600",
            owner="root",
            group="root",
            size=len(text),
            mtime=NOW,
            sha256="x",
            content=text,
        )
    return observed.model_copy(update={"hosts": {"h1": host.model_copy(update={"files": files})}})


def test_what_the_record_lists_and_the_spec_dropped_is_planned_as_removals() -> None:
    loaded = load_text(SPEC)
    record = render_record(Managed(frozenset({"kept", "gone"}), frozenset({"old-db"})))
    observed = with_record(ideal_observation(loaded), record)
    changes = diff(loaded, observed)
    by_kind = {c.kind: c for c in changes}
    assert [(c.action, c.kind, c.service, c.subject) for c in changes] == [
        ("delete", "service_remove", "gone", "service gone"),
        ("delete", "backup_remove", "backup:old-db", "backup old-db"),
    ]
    assert "its files are kept" in by_kind["service_remove"].reason
    assert "snapshots are kept" in by_kind["backup_remove"].reason
    plan = make_plan(loaded, observed, changes)
    assert plan.summary.delete == 2
    work = deploy_work(loaded, plan)["h1"]
    assert work == [
        RecordWork(services=["gone", "kept"], backups=["old-db"]),
        RemoveBackupWork(name="old-db"),  # in plan order: backup:old-db sorts first
        RemoveServiceWork(name="gone"),
        RecordWork(services=["kept"], backups=[]),
    ]


def test_no_record_or_an_untrusted_one_means_no_removals() -> None:
    loaded = load_text(SPEC)
    for text in (
        None,
        "",
        "not json",
        '{"format": 2, "services": ["x"], "backups": []}',
        '{"format": 1, "services": ["$(id)"], "backups": []}',
    ):
        assert diff(loaded, with_record(ideal_observation(loaded), text)) == []


def test_record_round_trips() -> None:
    managed = Managed(frozenset({"a", "b"}), frozenset({"db"}))
    assert parse_record(render_record(managed)) == managed
