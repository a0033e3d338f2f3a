"""`reconcile` applies on real hosts: converges, is idempotent, fails hosts alone, locks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from reconciler.store.journal import Journal
from reconciler.store.lock import host_lock_path, state_lock
from tests.fleet import lab as fleet_lab
from tests.integration.conftest import (
    SLOW_TO_START,
    lab_spec,
    run_pyinfra,
    run_reconcile,
    start_reconcile,
    workers_of,
)
from tests.json_schemas import check

UNITS = "/etc/systemd/system/agent.service /etc/systemd/system/ollama.service"


def reconcile(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_reconcile(*args, stdin=stdin)


def host_marks(lab: fleet_lab.Lab) -> dict[str, str]:
    """Unit file mtimes and ActiveEnterTimestamps: any rewrite or restart changes them."""
    return {
        "h1": fleet_lab.ssh(
            lab,
            "h1",
            "stat -c %Y /etc/systemd/system/agent.service; "
            "systemctl show -p ActiveEnterTimestamp agent.service",
        ),
        "h2": fleet_lab.ssh(
            lab,
            "h2",
            "stat -c %Y /etc/systemd/system/ollama.service; "
            "systemctl show -p ActiveEnterTimestamp ollama.service",
        ),
    }


@pytest.fixture(scope="module")
def files(lab: fleet_lab.Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("apply")
    spec = base / "fleet.yaml"
    spec.write_text(lab_spec(lab))
    return {"spec": spec, "journal": base / "journal.db"}


def test_apply_converges_fresh_hosts_and_is_idempotent(
    lab: fleet_lab.Lab, files: dict[str, Path]
) -> None:
    spec, journal = str(files["spec"]), str(files["journal"])
    first = reconcile(spec, "--yes", "--journal", journal)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Converged in" in first.stdout
    models = httpx.get(f"http://{lab.host('h2').address}:11434/api/tags", timeout=5).json()
    assert {m["name"] for m in models["models"]} == {"qwen2.5:1.5b", "llama3.2:3b"}
    status = reconcile("status", spec, "--journal", journal)
    assert status.returncode == 0
    rows = [line.split() for line in status.stdout.splitlines()[1:3]]
    assert [(r[1], r[3], r[4], r[5]) for r in rows] == [
        ("agent", "enabled,active", "healthy", "no"),
        ("ollama", "enabled,active", "healthy", "no"),
    ]
    as_json = reconcile("status", spec, "--journal", journal, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    check("status", document)  # real hosts' status, against reconciler/cli/schemas
    assert {(r["service"], r["health"]) for r in document["services"]} == {
        ("agent", "healthy"),
        ("ollama", "healthy"),
    }

    before = host_marks(lab)
    second = reconcile(spec, "--yes", "--journal", journal)
    assert second.returncode == 0
    assert second.stdout.rstrip().endswith("No changes. The fleet matches the desired state.")
    assert host_marks(lab) == before  # no unit file rewritten, nothing restarted

    # pyinfra's own prepare stage, on the same deploys, sees nothing left to change.
    dry = run_pyinfra("--dry", spec=Path(spec))
    assert dry.returncode == 0, dry.stderr
    output = dry.stderr + dry.stdout
    table = output.split("Detected changes:")[1].split("Detected changes may")[0]
    ops = [line for line in table.splitlines() if line.strip().startswith("Service |")]
    assert len(ops) >= 6, table
    changes = [re.split(r"\s{2,}", op.strip())[1] for op in ops]  # the "Change" column
    assert set(changes) == {"-"}, table

    history = reconcile("history", "--journal", journal)
    outcomes = [line.split()[4] for line in history.stdout.splitlines()[1:]]
    assert outcomes == ["no-changes", "converged"]


def test_plain_pyinfra_cli_runs_the_same_deploys_models_included(
    lab: fleet_lab.Lab, files: dict[str, Path]
) -> None:
    url = f"http://{lab.host('h2').address}:11434"
    httpx.request(
        "DELETE", f"{url}/api/delete", json={"model": "qwen2.5:1.5b"}, timeout=5
    ).raise_for_status()
    fleet_lab.ssh(lab, "h1", "systemctl stop agent.service")
    done = run_pyinfra("-y", spec=files["spec"])
    assert done.returncode == 0, done.stderr
    names = {m["name"] for m in httpx.get(f"{url}/api/tags", timeout=5).json()["models"]}
    assert names == {"qwen2.5:1.5b", "llama3.2:3b"}
    assert fleet_lab.ssh(lab, "h1", "systemctl is-active agent.service").strip() == "active"


def test_unhealthy_service_fails_its_host_and_the_other_converges(
    lab: fleet_lab.Lab, files: dict[str, Path]
) -> None:
    spec = files["spec"].parent / "broken.yaml"
    broken = """\
  broken:
    host: h1
    unit: {description: never healthy, exec_start: /bin/sleep infinity}
    health: [{kind: http, url: "http://{address}:9/health"}]
    rto: 4s
"""
    text = lab_spec(lab).replace("models:\n", broken + "models:\n")
    spec.write_text(text.replace("--pull-seconds 0.2", "--pull-seconds 0.1"))
    done = reconcile(str(spec), "--yes", "--journal", str(files["journal"]))
    assert done.returncode == 1
    assert "host h1: FAILED" in done.stdout
    assert re.search(
        r"broken not healthy within its RTO \(4s\): http "
        + re.escape(f"http://{lab.host('h1').address}:9/health")
        + r": ConnectError",
        done.stdout,
    ), done.stdout
    assert "host h2: ok" in done.stdout  # h2's changed unit was applied and passed its gate
    assert "--pull-seconds 0.1" in fleet_lab.ssh(
        lab, "h2", "cat /etc/systemd/system/ollama.service"
    )
    history = reconcile("history", "--journal", str(files["journal"]))
    assert history.stdout.splitlines()[1].split()[4] == "failed"


def test_unreachable_host_fails_alone(lab: fleet_lab.Lab, files: dict[str, Path]) -> None:
    spec = files["spec"].parent / "edit.yaml"
    spec.write_text(
        lab_spec(lab)
        .replace("mode = test", "mode = edited")
        .replace("--pull-seconds 0.2", "--pull-seconds 0.3")
    )
    fleet_lab.cut_link(lab, "h1")
    try:
        done = reconcile(str(spec), "--yes", "--journal", str(files["journal"]))
    finally:
        fleet_lab.restore_link(lab, "h1")
    assert done.returncode == 1
    assert re.search(r"host h1: FAILED.*\n\s+error\s+unreachable", done.stdout), done.stdout
    assert "host h2: ok" in done.stdout
    assert "--pull-seconds 0.3" in fleet_lab.ssh(
        lab, "h2", "cat /etc/systemd/system/ollama.service"
    )
    assert "mode = test" in fleet_lab.ssh(lab, "h1", "cat /etc/agent/agent.conf")


def test_refuses_without_terminal_or_yes(files: dict[str, Path], lab: fleet_lab.Lab) -> None:
    spec = files["spec"].parent / "confirm.yaml"
    spec.write_text(lab_spec(lab).replace("mode = test", "mode = confirm"))
    done = reconcile(str(spec), "--journal", str(files["journal"]), stdin="")
    assert done.returncode == 64  # a usage error
    assert "error: refusing to apply without confirmation: no terminal; pass --yes" in done.stderr
    assert "mode = confirm" not in fleet_lab.ssh(lab, "h1", "cat /etc/agent/agent.conf")


def test_lock_waits_names_the_holder_and_takes_over_stale_locks(
    files: dict[str, Path], lab: fleet_lab.Lab
) -> None:
    spec, journal = files["spec"], files["journal"]
    path = host_lock_path(journal.parent, lab.host("h2").address, 22)
    with state_lock(path, 1, print):
        done = reconcile(str(spec), "--yes", "--journal", str(journal), "--lock-timeout", "1")
    assert done.returncode == 1
    assert re.search(
        rf"error: a host of this fleet is locked by \S+ \(pid {os.getpid()} on .*\); "
        r"gave up after 1s",
        done.stderr,
    ), done.stderr
    path.write_text(json.dumps({"owner": "ghost", "pid": 999999, "host": "gone", "started": 0}))
    done = reconcile(str(spec), "--yes", "--journal", str(journal), "--lock-timeout", "1")
    assert "took over a stale lock from ghost (pid 999999 on gone" in done.stderr
    assert done.returncode in (0, 1)  # the fleet's own state does not matter here


def test_two_state_files_naming_the_same_hosts_never_deploy_together(
    files: dict[str, Path], lab: fleet_lab.Lab
) -> None:
    """The lock is on the hosts, not the file name: a copy of the state file waits.

    The first run holds the lock through a health gate that takes 3 s (a service ready
    only then), so the copy surely tries while it is held: a converge alone is now over
    before a second process has started."""
    first, copy = (files["spec"].parent / n for n in ("first.yaml", "copy.yaml"))
    first.write_text(
        lab_spec(lab)
        .replace("mode = test", "mode = first")
        .replace("services:\n", "services:\n" + SLOW_TO_START)
    )
    copy.write_text(lab_spec(lab).replace("mode = test", "mode = copy"))
    journal = str(files["journal"])
    running = start_reconcile(str(first), "--yes", "--journal", journal)
    lock = host_lock_path(files["journal"].parent, lab.host("h1").address, 22)

    def holds_the_lock() -> bool:
        try:
            return bool(json.loads(lock.read_text() or "{}").get("pid") == running.pid)
        except (OSError, ValueError):
            return False

    deadline = time.monotonic() + 60
    while not holds_the_lock() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = reconcile(str(copy), "--yes", "--journal", journal, "--lock-timeout", "0.5")
    assert running.wait(timeout=120) == 0
    assert second.returncode == 1
    assert "a host of this fleet is locked by" in second.stderr
    assert f"(pid {running.pid} on" in second.stderr
    assert fleet_lab.ssh(lab, "h1", "cat /etc/agent/agent.conf") == "mode = first\n"
    back = reconcile(str(files["spec"]), "--yes", "--journal", journal)  # `slow` removed
    assert back.returncode == 0, back.stdout + back.stderr


def test_a_run_killed_midway_is_still_recorded_and_its_lock_taken_over(
    lab: fleet_lab.Lab, files: dict[str, Path]
) -> None:
    spec = files["spec"].parent / "killed.yaml"
    spec.write_text(lab_spec(lab).replace("mode = test", "mode = killed"))
    journal_path = files["journal"].parent / "killed.db"
    proc = start_reconcile(str(spec), "--yes", "--journal", str(journal_path))

    def started() -> bool:
        if not journal_path.exists():
            return False
        journal = Journal(journal_path)
        try:
            return bool(journal.runs(1))
        finally:
            journal.close()

    deadline = time.monotonic() + 60
    while not started() and time.monotonic() < deadline:
        time.sleep(0.05)
    while not workers_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # the deploy's worker is up: kill the parent mid-deploy
    assert workers_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 0.5  # at once: a deploy left running takes longer
    while workers_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers_of(proc.pid) == [], "the SSH worker outlived its killed parent"
    journal = Journal(journal_path)
    [run] = journal.runs(5)
    plan = json.loads(
        journal.db.execute("SELECT plan FROM runs WHERE id = ?", (run.id,)).fetchone()[0]
    )
    journal.close()
    assert run.ended is None and run.outcome is None  # recorded before it finished
    assert any(
        a["subject"] == "file /etc/agent/agent.conf" for h in plan["hosts"] for a in h["actions"]
    )
    done = reconcile(str(spec), "--yes", "--journal", str(journal_path))
    assert "took over a stale lock" in done.stderr
    assert f"run {run.id} was cut short (its process is gone): marked abandoned" in done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    journal = Journal(journal_path)
    outcomes = {r.id: r.outcome for r in journal.runs(5)}
    journal.close()
    assert outcomes[run.id] == "abandoned"
