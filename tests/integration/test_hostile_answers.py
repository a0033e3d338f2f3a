"""A host's answers are untrusted, on real hosts: a dripping health endpoint, a 20 MiB
unit file, escape sequences in a unit's state and in model names, a drop-in nobody
wrote into the spec, and a snapshot with a FIFO and a symlink where copies belong.
Each was found to stall, bloat, mislead or crash the controller before its fix.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.store.journal import Journal
from state.layout import backup_path
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import ROOT, lab_spec, run_reconcile

PASSWORD = "test-only-hostile-answers-password-3d1e"
ENV = {**os.environ, "FLEET_TEST_RESTIC_PASSWORD": PASSWORD}
RECONCILE = [sys.executable, "-m", "reconciler.cli"]
RAW_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")  # all but \t and \n
BACKUPS = """\
backups:
  db:
    host: h1
    sqlite: [/var/lib/agent/metrics.db]
    schedule: hourly
    retention: {keep_last: 3}
    rpo: 1h
    repository: sftp:root@h2:/srv/restic/hostile
    password: env:FLEET_TEST_RESTIC_PASSWORD
    init: true
"""


def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
    return run_reconcile(*args, env=ENV)


def wait_for(what: str, check: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.25)
    told = log.read_text()[-3000:] if log is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{told}")


@pytest.fixture(scope="module")
def fleet(lab: fleet_lab.Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The lab converged with a backup policy; the journal next to the spec."""
    base = tmp_path_factory.mktemp("hostile-answers")
    spec = base / "fleet.yaml"
    text = lab_spec(lab, BACKUPS).replace(
        "--interval 1", "--interval 1 --metrics-db /var/lib/agent/metrics.db"
    )
    spec.write_text(text)  # the first start of the stand-ins, with the usual RTO of 30 s
    done = reconcile("--yes", str(spec), "--journal", str(base / "journal.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    # A heal waits for the healed service's health up to its RTO: short for Ollama here,
    # which the dripping test keeps unhealthy through every restart. (As the first RTO it
    # failed a loaded machine's first start of the stand-in.)
    spec.write_text(text.replace("    rto: 30s\nmodels:", "    rto: 3s\nmodels:"))
    yield spec
    ollama_mode(lab, "ok")


def journal_of(spec: Path) -> Path:
    return spec.parent / "journal.db"


def no_run_under_way(journal: Path) -> bool:
    opened = Journal(journal)
    try:
        runs = opened.runs(1)
    finally:
        opened.close()
    return bool(runs) and runs[0].outcome is not None


def ollama_mode(lab: fleet_lab.Lab, mode: str) -> None:
    url = f"http://{lab.host('h2').address}:11434/test/mode"
    httpx.post(url, json={"mode": mode}, timeout=5, trust_env=False).raise_for_status()


def timed(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = reconcile(*args)
    return time.monotonic() - started, done


def test_a_dripping_health_endpoint_stalls_nothing(lab: fleet_lab.Lab, fleet: Path) -> None:
    """Ollama on h2 answers 200, then one byte a second (httpx times out per read, so
    before the fix `--dry-run` never ended and `watch` froze inside a probe pass)."""
    journal = str(journal_of(fleet))
    usual, _ = timed("--dry-run", str(fleet), "--journal", journal)
    ollama_mode(lab, "drip")
    try:
        took, done = timed("--dry-run", str(fleet), "--journal", journal)
        assert "no complete answer within the request's deadline" in done.stdout, done.stdout
        # It ends (the check's deadline is 2 s): before the fix it never did. How fast
        # is bench/bounds.py's to measure; a loaded machine may be slow.
        assert took <= usual + 60, f"--dry-run took {took:.1f}s, {usual:.1f}s usually"

        log = fleet.parent / "watch-drip.log"
        watch = subprocess.Popen(
            [*RECONCILE, "watch", str(fleet), "--journal", journal, "--max-seconds", "150"],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            start_new_session=True,
        )
        try:
            wait_for("a probe pass", lambda: "probe: drift on h2" in log.read_text(), 60, log)
            fleet_lab.ssh(lab, "h1", "systemctl stop agent.service")
            stopped = time.monotonic()
            wait_for(
                "the agent on h1 healed",
                lambda: (
                    fleet_lab.ssh(
                        lab, "h1", "systemctl is-active agent.service", check=False
                    ).strip()
                    == "active"
                ),
                90,
            )
            print(f"healed in {time.monotonic() - stopped:.1f}s beside a dripping host")
            # SIGTERM between runs: a run under way (a heal's gate on the dripping host
            # waits up to its RTO) is finished first, by design; probing is not.
            wait_for("the heal run finished", lambda: no_run_under_way(journal_of(fleet)), 30)
            watch.send_signal(signal.SIGTERM)
            asked = time.monotonic()
            watch.wait(timeout=60)  # a loop frozen inside a probe pass never exits
            print(f"stopped {time.monotonic() - asked:.1f}s after SIGTERM")
            assert watch.returncode == 0
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
    finally:
        ollama_mode(lab, "ok")


def peak_rss_mib(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """`reconcile ARGS` under a fresh parent: the largest resident size of its tree."""
    probe = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, "-m", "reconciler.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=300,
    )
    lines = done.stderr.splitlines()
    return int(lines[-1]) / 1024, done


def test_a_20_mib_unit_file_is_not_read_stored_or_shown(lab: fleet_lab.Lab, fleet: Path) -> None:
    journal = journal_of(fleet)
    usual, _ = peak_rss_mib("--dry-run", str(fleet), "--journal", str(journal))
    fleet_lab.ssh(
        lab, "h1", "head -c 20971520 /dev/zero | tr '\\0' '#' > /etc/systemd/system/agent.service"
    )
    grown, done = peak_rss_mib("--dry-run", str(fleet), "--journal", str(journal))
    assert "unit file differs: 20971520 bytes on the host" in done.stdout, done.stdout
    assert "(unit file of 20971520 bytes, sha256 " in done.stdout
    assert len(done.stdout) < 64 * 1024
    assert grown <= usual + 16, f"peak {grown:.0f} MiB against {usual:.0f} MiB usually"

    before = journal.stat().st_size
    applied = reconcile("--yes", str(fleet), "--journal", str(journal))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert journal.stat().st_size - before < 512 * 1024
    size = fleet_lab.ssh(lab, "h1", "stat -c %s /etc/systemd/system/agent.service")
    assert int(size) < 4096


FAKE_SYSTEMCTL = """#!/bin/sh
# A compromised host: `systemctl show` answers with escape sequences and a forged line.
if [ "$1" = show ]; then
    printf 'ActiveState=act\\033]0;pwned\\007ive\\r\\033[32mconverged\\033[0m\\n'
    printf 'SubState=run\\nFAKE: all converged\\n'
    printf 'UnitFileState=enabled\\nActiveEnterTimestamp=\\n'
    exit 0
fi
exec /usr/bin/systemctl "$@"
"""
MODELS = "/var/lib/ollama-standin/models.json"


def test_escape_sequences_and_newlines_reach_no_terminal_raw(
    lab: fleet_lab.Lab, fleet: Path
) -> None:
    hostile: dict[str, dict[str, object]] = {
        "qwen2.5:1.5b": {},
        "evil\x1b]0;pwned\x07:1b\nPlan: 0 to change. Fleet converged.": {},
    }
    fleet_lab.ssh(
        lab,
        "h1",
        f"cat > /usr/local/sbin/systemctl <<'EOF'\n{FAKE_SYSTEMCTL}EOF\n"
        "chmod 755 /usr/local/sbin/systemctl",
    )
    saved = fleet_lab.ssh(lab, "h2", f"cat {MODELS}")
    fleet_lab.ssh(lab, "h2", f"cat > {MODELS} <<'EOF'\n{json.dumps(hostile)}\nEOF")
    try:
        journal = str(journal_of(fleet))
        outputs = [
            reconcile("--dry-run", str(fleet), "--journal", journal),
            reconcile("status", str(fleet), "--journal", journal),
        ]
        for done in outputs:
            text = done.stdout + done.stderr
            assert not RAW_CONTROLS.search(text), repr(text[:3000])
            assert "\nPlan: 0 to change. Fleet converged." not in text
        plan = outputs[0].stdout
        assert "ActiveState=act\\x1b]0;pwned\\aive\\r\\x1b[32mconverged\\x1b[0m" in plan, plan
    finally:
        fleet_lab.ssh(lab, "h1", "rm -f /usr/local/sbin/systemctl")
        fleet_lab.ssh(lab, "h2", f"cat > {MODELS} <<'EOF'\n{saved}\nEOF")


def test_a_drop_in_is_drift_planned_and_removed(lab: fleet_lab.Lab, fleet: Path) -> None:
    """Before: a drop-in replaced the command, and `--dry-run` said "No changes"."""
    journal = str(journal_of(fleet))
    fleet_lab.ssh(
        lab,
        "h1",
        "mkdir -p /etc/systemd/system/agent.service.d && printf "
        "'[Service]\\nExecStart=\\nExecStart=/bin/sleep 1000\\n' "
        "> /etc/systemd/system/agent.service.d/override.conf && "
        "systemctl daemon-reload && systemctl restart agent",
    )
    planned = reconcile("--dry-run", str(fleet), "--journal", journal)
    assert "drop-ins /etc/systemd/system/agent.service.d" in planned.stdout, planned.stdout
    assert "not in the spec: override.conf" in planned.stdout
    applied = reconcile("--yes", str(fleet), "--journal", journal)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (
        fleet_lab.ssh(lab, "h1", "ls /etc/systemd/system/agent.service.d 2>&1; true")
        .strip()
        .endswith("No such file or directory")
    )
    command = fleet_lab.ssh(lab, "h1", "systemctl show -p ExecStart agent")
    assert "/usr/local/bin/agent" in command and "sleep" not in command
    assert "No changes" in reconcile("--dry-run", str(fleet), "--journal", journal).stdout


def test_a_fifo_and_a_symlink_in_a_snapshot_fail_the_drill_and_touch_nothing(
    lab: fleet_lab.Lab, fleet: Path
) -> None:
    """Before: the FIFO raised an uncaught OperationalError, and the symlink made the
    drill's SQLite check create a file on the controller, at the link's target."""
    target = Path(f"/tmp/fleet-test-planted-{uuid.uuid4().hex[:8]}.db")
    script = backup_path("db", "script")
    planted = (  # the compromised host's backup: its own script, two entries added
        f'sed \'s|^if restic backup|mkfifo "$stage/sqlite/fifo.db"; '
        f'ln -s {target} "$stage/sqlite/link.db"\\nif restic backup|\' {script} > /tmp/planted.sh'
        f" && set -a && . {backup_path('db', 'env')} && set +a && sh /tmp/planted.sh"
    )
    fleet_lab.ssh(lab, "h1", planted)
    journal = str(journal_of(fleet))
    # h1's own backup with fitting claims: the next apply records it (a drill takes only
    # recorded snapshots), so the drill meets the FIFO and the link.
    assert reconcile(str(fleet), "--yes", "--journal", journal).returncode == 0
    done = reconcile("backup", "drill", "db", "--state", str(fleet), "--journal", journal)
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "sqlite/fifo.db is a FIFO: refused" in text, text
    assert "sqlite/link.db is a symlink: refused" in text
    assert "internal error" not in text
    assert not target.exists()
