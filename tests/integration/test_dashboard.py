"""The dashboard as a person sees it: Debian's Chromium, headless, on the page that
`reconcile watch --http` serves, while a service on a lab host fails and is healed.
Screenshots at desktop and phone widths are kept in .artifacts/ (CI keeps them)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fleet import lab as fleet_lab
from tests.fleet.browser import chromium
from tests.fleet.etcd_cluster import free_port
from tests.integration.conftest import ROOT, lab_spec, run_reconcile, start_reconcile

ARTIFACTS = ROOT / ".artifacts"
OLLAMA_HEALTH = 'tr[data-service="ollama"] td:nth-child(3)'


def until(what: str, check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_the_page_shows_a_service_degraded_then_healed_without_a_reload(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    spec, journal = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    spec.write_text(
        lab_spec(lab) + "reconciler: {interval: 30s, probe_interval: 1s, backoff_initial: 1s}\n"
    )
    done = run_reconcile("--yes", str(spec), "--journal", str(journal))
    assert done.returncode == 0, done.stdout + done.stderr
    address = f"127.0.0.1:{free_port()}"
    watch = start_reconcile(
        "watch", str(spec), "--journal", str(journal), "--http", address, "--max-seconds", "240"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        until("the dashboard", lambda: _answers(f"http://{address}/"), 30)
        with chromium() as page:
            page.goto(f"http://{address}/")
            until("ollama healthy on the page", lambda: page.text(OLLAMA_HEALTH) == "Healthy", 30)
            page.screenshot(ARTIFACTS / "dashboard-desktop.png", 1280, 900, mobile=False)
            page.screenshot(ARTIFACTS / "dashboard-phone.png", 390, 844, mobile=True)
            # A fault that lasts: ollama stopped and its port taken, so healing fails
            # until the squatter goes.
            fleet_lab.ssh(
                lab,
                "h2",
                "systemctl stop ollama.service && systemd-run --unit=squatter "
                "/usr/bin/python3 -m http.server 11434",
            )
            until("ollama degraded on the page", lambda: page.text(OLLAMA_HEALTH) == "Degraded", 30)
            page.screenshot(ARTIFACTS / "dashboard-degraded-phone.png", 390, 844, mobile=True)
            fleet_lab.ssh(lab, "h2", "systemctl stop squatter.service")
            until("ollama healed on the page", lambda: page.text(OLLAMA_HEALTH) == "Healthy", 60)
        metrics = httpx.get(f"http://{address}/metrics", timeout=5).text
        names = {f.name for f in text_string_to_metric_families(metrics)}
        assert {"fleet_reconciler_service_healthy", "fleet_reconciler_reconcile"} <= names
    finally:
        fleet_lab.ssh(lab, "h2", "systemctl stop squatter.service 2>/dev/null; true")
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=60)
    for shot in ("dashboard-desktop.png", "dashboard-phone.png", "dashboard-degraded-phone.png"):
        assert (ARTIFACTS / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
