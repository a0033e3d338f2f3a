"""The shipped Prometheus rules and Grafana dashboard name only metrics that exist: every
`fleet_reconciler_*` (and `process_*`) name they use is in the exposition of the real
app over a fleet with a failover, a backup policy and its copy. (scripts/test.sh runs
`promtool check rules` and `promtool test rules` on the same files.)"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from reconciler.store.journal import Journal
from reconciler.web.app import make_app
from reconciler.web.metrics import PassMetrics
from tests.unit.helpers import load_text
from tests.unit.test_copies import with_copy
from tests.unit.test_spec import FAILOVER

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\b((?:fleet_reconciler|process)_[a-z_]+)\b")


def exposed(tmp_path: Path) -> set[str]:
    state = tmp_path / "fleet.yaml"
    journal = Journal(tmp_path / "journal.db")
    now = time.time()
    agent = {"host": "kimi", "healthy": False, "detail": "", "seen": now, "last_healthy": now - 9}
    journal.save_loop_state(str(state), {"last_pass": now, "services": {"agent": agent}})
    journal.close()
    loaded = load_text(with_copy() + FAILOVER)
    assert loaded.written.failover is not None and loaded.fleet.backups["db"].copies
    registry = CollectorRegistry()
    PassMetrics(registry, largest_rto=600).observe("full", 1.0, "success")
    client = TestClient(make_app(tmp_path / "journal.db", state, lambda: loaded, registry))
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {sample.name for family in families for sample in family.samples}


def used_in_alerts() -> set[str]:
    rules = yaml.safe_load((ROOT / "contrib/prometheus/alerts.yml").read_text())
    return {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in NAME.findall(rule["expr"])
    }


def used_in_dashboard() -> set[str]:
    dashboard = json.loads((ROOT / "contrib/grafana/fleet.json").read_text())
    return {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in NAME.findall(target["expr"])
    }


def test_the_alert_rules_name_only_metrics_that_exist(tmp_path: Path) -> None:
    used = used_in_alerts()
    assert {"fleet_reconciler_host_up", "fleet_reconciler_backup_rpo_seconds"} <= used
    assert used - exposed(tmp_path) == set()


def test_the_dashboard_names_only_metrics_that_exist(tmp_path: Path) -> None:
    used = used_in_dashboard()
    assert len(used) >= 15
    assert used - exposed(tmp_path) == set()


def test_a_misspelled_metric_would_be_found(tmp_path: Path) -> None:
    """The check above can fail: a name the app does not expose is reported."""
    assert "fleet_reconciler_backup_copy_age_seconds" not in exposed(tmp_path)
