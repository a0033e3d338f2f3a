"""The shipped alert rules fire on a real fault: a real Prometheus (Debian's binary,
on loopback) scrapes `reconcile watch --http` on the lab and evaluates
contrib/prometheus/alerts.yml; h1's link is cut, and FleetHostDown (h1) and
FleetBackupRPOBreached (h1's policy, RPO 30 s) fire, and neither did before. The rules are the shipped ones with
their `for:` waits set to 0 s (promtool's tests in scripts/test.sh check the waits)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fleet import lab as fleet_lab
from tests.fleet.ports import free_port
from tests.integration.conftest import ROOT, lab_spec, run_reconcile, start_reconcile
from tests.spec_text import backup_policy

PROMETHEUS = Path("/var/cache/fleet-reconciler/prometheus/prometheus")
PASSWORD = "alerts-test-restic-password"
POLICY = "backups:\n" + backup_policy(
    "etc",
    "h1",
    "sftp:root@h2:/srv/restic/alerts",
    "env:FLEET_TEST_ALERTS_PASSWORD",
    rpo="30s",
    more=("init: true",),
)


def api(prometheus: str, path: str) -> dict[str, Any] | None:
    """Prometheus's answer, or None while it is starting (503 "Service Unavailable"
    until its storage is open) or not listening yet."""
    try:
        response = httpx.get(f"http://{prometheus}/api/v1/{path}", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    data: dict[str, Any] = response.json()["data"]
    return data


def firing(prometheus: str) -> list[dict[str, Any]]:
    answer = api(prometheus, "alerts")
    return [a for a in answer["alerts"] if a["state"] == "firing"] if answer else []


def fired(prometheus: str, name: str, **labels: str) -> bool:
    return any(
        a["labels"].get("alertname") == name
        and all(a["labels"].get(k) == v for k, v in labels.items())
        for a in firing(prometheus)
    )


def scraped(prometheus: str) -> bool:
    """Prometheus has scraped the watch's /metrics successfully."""
    answer = api(prometheus, "targets")
    return answer is not None and any(t["health"] == "up" for t in answer["activeTargets"])


def test_the_shipped_alerts_fire_on_a_real_fault(lab: fleet_lab.Lab, tmp_path: Path) -> None:
    env = {**os.environ, "FLEET_TEST_ALERTS_PASSWORD": PASSWORD}
    spec, journal = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    spec.write_text(lab_spec(lab, POLICY) + "reconciler: {interval: 30s, probe_interval: 1s}\n")
    done = run_reconcile("--yes", str(spec), "--journal", str(journal), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    metrics, prometheus = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    rules = tmp_path / "alerts.yml"
    shipped = (ROOT / "contrib/prometheus/alerts.yml").read_text()
    rules.write_text(re.sub(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", shipped))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n"
        f"  - job_name: fleet\n    static_configs: [{{targets: ['{metrics}']}}]\n"
    )
    watch = start_reconcile(
        "watch", str(spec), "--journal", str(journal), "--http", metrics,
        "--max-seconds", "240", env=env,
    )  # fmt: skip
    server = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={prometheus}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60  # scraping, and nothing fires on a healthy fleet
        while not scraped(prometheus):
            assert time.monotonic() < deadline, "Prometheus never scraped the watch"
            time.sleep(1)
        time.sleep(3)
        assert not fired(prometheus, "FleetHostDown"), firing(prometheus)
        assert not fired(prometheus, "FleetBackupRPOBreached"), firing(prometheus)
        cut = time.monotonic()
        fleet_lab.cut_link(lab, "h1")
        deadline = time.monotonic() + 90
        while not (
            fired(prometheus, "FleetHostDown", host="h1")
            and fired(prometheus, "FleetBackupRPOBreached", policy="etc")
        ):
            assert time.monotonic() < deadline, firing(prometheus)
            time.sleep(1)
        assert not fired(prometheus, "FleetHostDown", host="h2")
        print(f"both fired {time.monotonic() - cut:.1f}s after the cut")
    finally:
        fleet_lab.restore_link(lab, "h1")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=60)
