"""The dashboard and /metrics, served by the real Starlette app over a real journal;
the exposition is read back with prometheus_client's own parser."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from reconciler.events.bus import Event
from reconciler.flows.incident_desk import IncidentDesk
from reconciler.store.incidents import LocalIncidents
from reconciler.store.journal import Journal
from reconciler.web.app import make_app
from reconciler.web.metrics import PassMetrics


def journal_with_a_degraded_service(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "fleet.yaml"
    journal = Journal(tmp_path / "journal.db")
    now = time.time()
    journal.save_loop_state(
        str(state),
        {
            "last_pass": now,
            "services": {
                "agent": {"host": "kimi", "healthy": True, "detail": "", "seen": now},
                "ollama": {
                    "host": "hermes",
                    "healthy": False,
                    "detail": "<b>refused</b>",
                    "seen": now,
                },
            },
            "pending": ["hermes/ollama"],
            "plan_text": "host hermes (198.18.0.12)\n  ~ ollama  unhealthy: <refused>\n",
        },
    )
    IncidentDesk(LocalIncidents(journal), lambda: None)(
        Event("P1", "escalation", "ollama crash loop", "hermes", "ollama", at=now)
    )
    journal.close()
    return tmp_path / "journal.db", state


def test_the_page_shows_health_sync_and_incidents_escaped(tmp_path: Path) -> None:
    journal, state = journal_with_a_degraded_service(tmp_path)
    client = TestClient(make_app(journal, state, lambda: None, CollectorRegistry()))
    page = client.get("/").text
    assert '<tr data-service="ollama"><td>ollama</td><td>hermes</td><td class="Degraded">' in page
    assert '<td class="OutOfSync">OutOfSync</td>' in page
    assert '<tr data-service="agent"><td>agent</td><td>kimi</td><td class="Healthy">' in page
    assert "ollama crash loop" in page and "&lt;b&gt;refused&lt;/b&gt;" in page
    assert 'name="viewport"' in page and "new EventSource" in page
    assert (
        '<pre class="plan"><span class="">host hermes (198.18.0.12)</span>\n'
        '<span class="update">  ~ ollama  unhealthy: &lt;refused&gt;</span>' in page
    )
    assert '<span class="OutOfSync">Out of sync: 1 pending</span>' in page
    assert 'svg class="chart"' in page and "no incidents" not in page  # one P1 is open


def test_metrics_parse_with_prometheus_own_parser(tmp_path: Path) -> None:
    journal, state = journal_with_a_degraded_service(tmp_path)
    registry = CollectorRegistry()
    passes = PassMetrics(registry)
    passes.observe("probe", 0.3, "success")
    passes.observe("full", 2.0, "error")
    client = TestClient(make_app(journal, state, lambda: None, registry))
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert (
        samples[("fleet_reconciler_service_healthy", (("host", "hermes"), ("service", "ollama")))]
        == 0
    )
    assert (
        samples[("fleet_reconciler_service_healthy", (("host", "kimi"), ("service", "agent")))] == 1
    )
    assert samples[("fleet_reconciler_drift", (("host", "hermes"), ("service", "ollama")))] == 1
    assert samples[("fleet_reconciler_incidents_open", (("severity", "P1"),))] == 1
    assert (
        samples[("fleet_reconciler_reconcile_total", (("kind", "full"), ("result", "error")))] == 1
    )
    assert samples[("fleet_reconciler_reconcile_time_seconds_count", (("kind", "probe"),))] == 1


def test_backups_show_their_age_against_the_rpo_on_the_page_and_in_metrics(
    tmp_path: Path,
) -> None:
    """The page reads the newest snapshot as the plan recorded it. It once read another
    key (the repository as written, `sftp:root@hermes:...`, where the plan records it
    resolved to hermes's address) and said 'newest: none' while `status` saw one."""
    from datetime import UTC, datetime

    from reconciler.flows.once import remember_confirmations
    from reconciler.hosts.observation import BackupState
    from reconciler.store.confirmations import Confirmations
    from tests.unit.helpers import ideal_observation, load_text
    from tests.unit.test_diff_backups import POLICY
    from tests.unit.test_spec import BASE

    journal_path, state = journal_with_a_degraded_service(tmp_path)
    loaded = load_text(BASE + POLICY)
    journal = Journal(journal_path)
    now = time.time()
    listed = BackupState(
        last_snapshot=datetime.fromtimestamp(now - 7200, UTC), snapshots=4, newest_id="abc123"
    )
    observed = ideal_observation(loaded).model_copy(
        update={"backups": {"db": listed}, "observed_at": datetime.fromtimestamp(now, UTC)}
    )
    remember_confirmations(loaded, observed, Confirmations(journal))  # as a plan does
    journal.close()
    client = TestClient(make_app(journal_path, state, lambda: loaded, CollectorRegistry()))
    page = client.get("/").text
    assert "<h2>Backups</h2>" in page and '<td class="breach">2.0h ago</td>' in page
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    [age] = families["fleet_reconciler_backup_age_seconds"].samples
    assert age.labels == {"policy": "db"} and 7199 < age.value < 7300
    assert families["fleet_reconciler_backup_rpo_seconds"].samples[0].value == 3600


def test_a_copy_has_its_row_and_its_metrics(tmp_path: Path) -> None:
    """Each copy (`copies:`): its newest recorded snapshot's age against its own RPO, on
    the page and in /metrics, with its last check."""
    from reconciler.events.sinks import journal_sink
    from reconciler.store.ledger import Entry, Ledger
    from tests.unit.helpers import load_text
    from tests.unit.test_copies import with_copy

    journal_path, state = journal_with_a_degraded_service(tmp_path)
    loaded = load_text(with_copy())
    journal = Journal(journal_path)
    now = time.time()
    entry = Entry("c" * 64, "recorded", "kimi", 0, now - 3 * 86400, now, "copy of " + "a" * 64)
    Ledger(journal).add(loaded.fleet, "db", entry, "offsite")
    journal_sink(journal)(
        Event("P3", "backup_check_passed", "ok", "kimi", "copy:db:offsite", at=now - 120)
    )
    journal.close()
    client = TestClient(make_app(journal_path, state, lambda: loaded, CollectorRegistry()))
    page = client.get("/").text
    assert "<td>db → copy offsite</td>" in page and "passed 2m ago" in page
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    newest = {
        s.labels["copy"]: s.value
        for s in families["fleet_reconciler_backup_last_snapshot_timestamp_seconds"].samples
    }
    assert newest[""] == 0  # the repository was never listed: 0, not absent
    assert now - 3 * 86400 - 1 <= newest["offsite"] <= now - 3 * 86400 + 1
    rpo = {
        s.labels["copy"]: s.value for s in families["fleet_reconciler_backup_rpo_seconds"].samples
    }
    assert rpo == {"": 3600, "offsite": 86400}
    assert len(families["fleet_reconciler_backup_age_seconds"].samples) == 0  # never listed


def test_a_service_with_no_checks_is_healthy_on_the_page() -> None:
    """Tools a host needs (installed, no unit, no checks) have nothing that can fail; the
    page said Degraded for ever, where `status` says '-' and the gate does not wait."""
    from reconciler.daemon.loop_status import services_seen
    from tests.unit.helpers import ideal_observation, load_text
    from tests.unit.test_spec import BASE

    tools = "  tools:\n    host: kimi\n    install: {kind: apt, packages: [git]}\n"
    loaded = load_text(BASE + tools)
    observed = ideal_observation(loaded)
    seen = services_seen(loaded, observed, 1.0)
    assert seen["tools"] == {"host": "kimi", "healthy": True, "detail": "", "seen": 1.0}
    kimi = observed.hosts["kimi"].model_copy(update={"reachable": False})
    lost = observed.model_copy(update={"hosts": {**observed.hosts, "kimi": kimi}})
    assert services_seen(loaded, lost, 2.0)["tools"]["healthy"] is False


def test_snapshot_history_keeps_its_days_and_always_the_newest(tmp_path: Path) -> None:
    """The age chart's data: bounded (35 days), yet a policy silent for longer still
    shows its one, old, newest snapshot."""
    from reconciler.store.confirmations import Confirmation, Confirmations
    from tests.unit.helpers import load_text
    from tests.unit.test_diff_backups import POLICY
    from tests.unit.test_spec import BASE

    fleet = load_text(BASE + POLICY).fleet
    store = Confirmations(Journal(tmp_path / "journal.db"))
    day, now = 86400.0, 1_800_000_000.0
    for n, age in enumerate([60, 40, 20, 3, 1]):
        store.put_policy(fleet, "db", Confirmation(f"s{n}", now - age * day, n + 1, now))
    assert store.history(fleet, "db", now - 7 * day) == [now - 20 * day, now - 3 * day, now - day]
    assert store.history(fleet, "db", 0) == [now - 20 * day, now - 3 * day, now - day]  # 35 days
    silent = Confirmations(Journal(tmp_path / "silent.db"))
    silent.put_policy(fleet, "db", Confirmation("old", now - 50 * day, 1, now))
    assert silent.history(fleet, "db", now - 7 * day) == [now - 50 * day]


def test_every_host_and_service_of_the_spec_has_a_series_an_alert_can_fire_on(
    tmp_path: Path,
) -> None:
    """A host the loop could not reach, or has not seen yet, is `host_up 0`; its
    services are `service_healthy 0`, never absent (an alert on absence never fires)."""
    from tests.unit.helpers import load_text
    from tests.unit.test_spec import BASE

    journal_path, state = journal_with_a_degraded_service(tmp_path)
    journal = Journal(journal_path)
    saved = journal.loop_state(str(state))
    assert saved is not None
    journal.save_loop_state(str(state), {**saved[1], "hosts": {"kimi": False}, "services": {}})
    journal.close()
    loaded = load_text(BASE)
    registry = CollectorRegistry()
    PassMetrics(registry, largest_rto=600)
    client = TestClient(make_app(journal_path, state, lambda: loaded, registry))
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    up = {s.labels["host"]: s.value for s in families["fleet_reconciler_host_up"].samples}
    assert up == {name: 0.0 for name in loaded.fleet.hosts}
    healthy = families["fleet_reconciler_service_healthy"].samples
    assert {s.labels["service"] for s in healthy} == set(loaded.fleet.services)
    assert all(s.value == 0 for s in healthy)
    assert families["fleet_reconciler_last_pass_timestamp_seconds"].samples[0].value > 0
    assert families["fleet_reconciler_leader"].samples[0].labels == {"shard": "0"}
    [info] = families["fleet_reconciler_build_info"].samples
    assert {"version", "python", "pyinfra"} <= set(info.labels)
    assert (
        "process_cpu_seconds" in families
        or "process_resident_memory_bytes" in families
        or ("python_info" in families)
    )
    buckets = {
        s.labels["le"]
        for s in families["fleet_reconciler_reconcile_time_seconds"].samples
        if "le" in s.labels
    }
    assert buckets == set()  # no pass observed yet: no bucket series
    passes = PassMetrics(CollectorRegistry(), largest_rto=600)
    assert passes.seconds._upper_bounds[-2] == 600  # the largest RTO is a bucket


def test_one_snapshot_per_pass_serves_the_page_live_clients_and_scrapes(
    tmp_path: Path,
) -> None:
    from reconciler.web.snapshot import SnapshotCache

    journal_path, state = journal_with_a_degraded_service(tmp_path)
    cache = SnapshotCache(journal_path, state, lambda: None)
    first = cache.current()
    assert cache.current() is first and cache.current() is first and cache.taken == 1
    journal = Journal(journal_path)
    saved = journal.loop_state(str(state))
    assert saved is not None
    time.sleep(0.01)
    journal.save_loop_state(str(state), {**saved[1], "pending": []})  # the next pass
    journal.close()
    assert cache.current() is not first and cache.taken == 2


def test_with_several_controllers_each_host_has_one_series_from_its_leader(
    tmp_path: Path,
) -> None:
    """A standby reports no host or service series (its last look is stale: its
    host_up 0 would page for a host that is up); a leader of a share reports its share."""
    from dataclasses import replace

    from tests.unit.helpers import load_text
    from tests.unit.test_spec import BASE

    journal_path, state = journal_with_a_degraded_service(tmp_path)
    loaded = load_text(BASE)

    def exposed(share: Any) -> dict[str, set[str]]:
        app = make_app(journal_path, state, lambda: loaded, CollectorRegistry(), share=share)
        text = TestClient(app).get("/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return {
            name: {s.labels.get("host", "") for s in families[name].samples}
            for name in ("fleet_reconciler_host_up", "fleet_reconciler_service_healthy")
            if name in families
        }

    standby = exposed(lambda: None)
    assert standby.get("fleet_reconciler_host_up", set()) == set()
    assert standby.get("fleet_reconciler_service_healthy", set()) == set()
    kimi_only = replace(
        loaded,
        fleet=loaded.fleet.model_copy(
            update={
                "hosts": {"kimi": loaded.fleet.hosts["kimi"]},
                "services": {n: s for n, s in loaded.fleet.services.items() if s.host == "kimi"},
            }
        ),
    )
    share = exposed(lambda: kimi_only)
    assert share["fleet_reconciler_host_up"] == {"kimi"}
    assert share["fleet_reconciler_service_healthy"] == {"kimi"}
