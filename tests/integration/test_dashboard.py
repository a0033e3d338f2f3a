"""The dashboard as a person sees it: Debian's Chromium, headless, on the page that
`reconcile watch --http` serves, while a service on a lab host fails and is healed.
Screenshots at desktop and phone widths are kept in .artifacts/ (CI keeps them)."""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fleet import lab as fleet_lab
from tests.fleet.browser import chromium
from tests.fleet.ports import free_port
from tests.fleet.scrape import pass_seconds
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
            # until the squatter goes. A bare socket, bound at once (http.server looks
            # its name up in DNS first, 10 s on a lab host: the heal won that race).
            squat = (
                "import socket; s = socket.create_server(('0.0.0.0', 11434)); "
                "[s.accept()[0].close() for _ in iter(int, 1)]"
            )
            fleet_lab.ssh(
                lab,
                "h2",
                "systemctl stop ollama.service && systemd-run --unit=squatter "
                f"/usr/bin/python3 -c {shlex.quote(squat)}",
            )
            until("ollama degraded on the page", lambda: page.text(OLLAMA_HEALTH) == "Degraded", 30)
            page.screenshot(ARTIFACTS / "dashboard-degraded-phone.png", 390, 844, mobile=True)
            fleet_lab.ssh(lab, "h2", "systemctl stop squatter.service")
            until("ollama healed on the page", lambda: page.text(OLLAMA_HEALTH) == "Healthy", 60)
        metrics = httpx.get(f"http://{address}/metrics", timeout=5).text
        names = {f.name for f in text_string_to_metric_families(metrics)}
        assert {"fleet_reconciler_service_healthy", "fleet_reconciler_reconcile"} <= names
        assert pass_seconds(address, "heal")[1] >= 1  # the probe-found heals are timed too
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


def test_a_heal_reaches_the_page_with_the_pass_that_healed(
    lab: fleet_lab.Lab, tmp_path: Path
) -> None:
    """With no probe passes in between (probe 10m, full pass every 5 s), the page is what
    the heal pass left. It used to keep the pass's first look (before the heal): Degraded
    until the next pass, with a last pass older than the heal."""
    from reconciler.store.journal import Journal, RunRecord

    spec, journal_path = tmp_path / "fleet.yaml", tmp_path / "journal.db"
    spec.write_text(lab_spec(lab) + "reconciler: {interval: 5s, probe_interval: 10m}\n")
    done = run_reconcile("--yes", str(spec), "--journal", str(journal_path))
    assert done.returncode == 0, done.stdout + done.stderr
    watch = start_reconcile(
        "watch", str(spec), "--journal", str(journal_path), "--max-seconds", "90"
    )
    journal = Journal(journal_path)
    try:
        until("the watch's first pass", lambda: journal.loop_state(str(spec)), 30)
        before = {r.id for r in journal.runs(50)}
        fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")

        def heal_run() -> RunRecord | None:
            return next(
                (r for r in journal.runs(5) if r.id not in before and r.ended is not None), None
            )

        until("a heal run", heal_run, 40)
        run = heal_run()
        assert run is not None and run.outcome == "converged", run
        # The first record after the run is its own pass's; the next pass is 5 s away.
        until(
            "the heal pass's record",
            lambda: (found := journal.loop_state(str(spec))) and found[0] >= (run.ended or 0),
            10,
        )
        saved = journal.loop_state(str(spec))
        assert saved is not None
        ollama = saved[1]["services"]["ollama"]
        assert ollama["healthy"] is True, saved[1]
        assert ollama["seen"] >= run.started and saved[1]["last_pass"] >= run.started
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=60)
        journal.close()
