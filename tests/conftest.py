"""Session-wide: every test process has its own controller home, and a run ends by
saying where its time went (its slowest tests come from `--durations`).

This file must not import the product: `reconciler.store.journal` reads
FLEET_RECONCILER_HOME when it is first imported, which is after `pytest_configure`.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, settings

FILES_SHOWN = 30

# Property tests assert what the code does, never how fast: hypothesis's default 200 ms
# deadline per example, and its "too slow" health check, fail a correct test on a
# machine busy with parallel labs.
settings.register_profile("fleet", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fleet")


def pytest_configure(config: pytest.Config) -> None:
    """A journal a test leaves at its default path lands in this process's own home,
    never in the machine's /var/lib/fleet-reconciler nor in another worker's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    os.environ["FLEET_RECONCILER_HOME"] = tempfile.mkdtemp(prefix=f"fleet-home-{worker or 'main'}-")
    if not worker:  # under xdist the controller sees every worker's reports
        config.pluginmanager.register(FileTimes(), "fleet-file-times")


class FileTimes:
    """The total of setup, call and teardown per test file (a module's lab boots in the
    setup of its first test, so it is counted with that file)."""

    def __init__(self) -> None:
        self.per_file: defaultdict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.per_file[report.nodeid.split("::", 1)[0]] += report.duration

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.per_file:
            return
        terminalreporter.section("time per file (setup, call and teardown)")
        ranked = sorted(self.per_file.items(), key=lambda item: -item[1])
        for path, seconds in ranked[:FILES_SHOWN]:
            terminalreporter.write_line(f"{seconds:9.1f}s  {path}")
        if len(ranked) > FILES_SHOWN:
            rest = sum(seconds for _, seconds in ranked[FILES_SHOWN:])
            terminalreporter.write_line(f"{rest:9.1f}s  ({len(ranked) - FILES_SHOWN} more files)")
        terminalreporter.write_line(f"{sum(self.per_file.values()):9.1f}s  in all")
