"""The README's dashboard screenshot: the real page (the real app, templates and charts)
over a journal seeded with a week of the demo fleet's history, in headless Chromium.

    .venv/bin/python -m tests.fleet.dashboard_shot docs/dashboard.png

The history is made up (a week cannot be waited for); everything that draws it is not.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from reconciler.store.confirmations import Confirmation, Confirmations
from reconciler.store.incidents import LocalIncidents
from reconciler.store.journal import Journal
from reconciler.web.app import make_app, serve_in_background
from state.load import load_fleet
from tests.fleet.browser import chromium
from tests.fleet.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DAY, HOUR = 86400.0, 3600.0


def seed(journal_path: Path, state: Path, now: float) -> None:
    loaded = load_fleet(state)
    journal = Journal(journal_path)
    services = {
        name: {"host": s.host, "healthy": name != "ollama", "detail": "", "seen": now}
        for name, s in loaded.fleet.services.items()
    }
    services["ollama"]["detail"] = "http: GET /api/tags: connection refused"
    plan = (
        "host hermes (198.18.0.12)\n"
        "  ~ service ollama  unhealthy: http: GET /api/tags: connection refused\n\n"
        "Plan: 0 to add, 0 to change, 0 to remove; 1 unhealthy."
    )
    journal.save_loop_state(
        str(state),
        {
            "last_pass": now - 2,
            "services": services,
            "pending": ["hermes/ollama"],
            "plan_text": plan,
        },
    )
    confirmations, rng = Confirmations(journal), random.Random(7)
    hourly = [now - i * HOUR - 300 for i in range(24 * 8) if not 50 <= i <= 54]  # a gap
    for n, at in enumerate(sorted(hourly)):
        confirmations.put_policy(loaded.fleet, "metrics-db", Confirmation(f"m{n}", at, n, at))
    for n in range(8):
        at = now - (7 - n) * DAY - 2 * HOUR
        confirmations.put_policy(loaded.fleet, "configs", Confirmation(f"c{n}", at, n, at))
    store = LocalIncidents(journal)
    for n in range(18):
        opened = now - 7 * DAY + n * 9 * HOUR + rng.uniform(0, 3 * HOUR)
        healed = rng.uniform(20, 90) * (1 + n / 6)  # slower as the week goes on
        store.put(
            f"i{n}",
            f"unhealthy:hermes:ollama:{n}",
            "resolved",
            {
                "status": "resolved",
                "severity": "P3" if n % 5 else "P1",
                "message": "hermes/ollama unhealthy",
                "first_seen": opened,
                "resolved_at": opened + healed,
                "timeline": [{"at": opened, "what": "opened"}],
            },
        )
    store.put(
        "open",
        "unhealthy:hermes:ollama",
        "open",
        {
            "status": "open",
            "severity": "P1",
            "message": "hermes/ollama unhealthy: self-healing failed after 2 attempts",
            "first_seen": now - 900,
            "timeline": [{"at": now - 900, "what": "opened"}, {"at": now - 600, "what": "P1"}],
        },
    )
    journal.close()


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png")
    state = ROOT / "state" / "demo.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "journal.db"
        seed(journal, state, time.time())
        address = f"127.0.0.1:{free_port()}"
        app = make_app(journal, state, lambda: load_fleet(state), CollectorRegistry())
        server = serve_in_background(app, address)
        try:
            time.sleep(1)
            with chromium() as page:
                page.goto(f"http://{address}/")
                time.sleep(1.5)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(out, 1100, 1400, mobile=False)
        finally:
            server.should_exit = True
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
