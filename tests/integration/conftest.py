"""Fixtures for integration tests: real nspawn hosts reached over real SSH.

Each test module gets freshly booted hosts (about 2 s); they are torn down even when
a test fails. Tests are skipped, with the reason, only when not running as root.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store.journal import Journal
from tests.fleet import lab as fleet_lab

ROOT = Path(__file__).resolve().parents[2]
STANDINS = ROOT / "tests" / "standins"
DB = "/root/agent/metrics.db"  # the failover agent's SQLite rows
# A service healthy only 3 s after it starts: a run that deploys it is under way for
# at least that long (its health gate), so a test can act on it mid-run.
SLOW_TO_START = """\
  slow:
    host: h1
    unit:
      description: ready 3 s after it starts
      exec_start: /bin/sh -c 'rm -f /run/slow-ready; sleep 3; touch /run/slow-ready; exec sleep infinity'
    health: [{kind: file_fresh, path: /run/slow-ready, max_age: 1h}]
    rto: 30s
"""


# The files that run longest (their time in a 4-worker run, as the run's own report
# prints it), handed out first: `--dist loadfile` gives each worker one file at a time
# in collection order (with `--no-loadscope-reorder`), and a long file that starts last
# leaves the other workers idle while it runs. Longest first keeps the run short.
LONGEST_FIRST = (  # seconds each took at 4 workers
    "test_notifications.py",  # 289 s
    "backups/test_round_trip.py",  # 287 s
    "failover/test_killed_moves.py",  # 284 s
    "failover/test_restore_sources.py",  # 244 s
    "failover/test_cut_and_power_off.py",  # 217 s
    "backups/test_rebuild.py",  # 209 s
    "failover/test_partitions_and_rpo.py",  # 195 s
    "backups/test_provenance_and_keys.py",  # 124 s
    "failover/test_drills_and_leases.py",  # 116 s
    "test_leadership.py",  # 104 s
    "test_fleet_memory.py",  # 95 s alone
    "test_drill.py",  # 90 s
    "test_forge.py",  # 82 s
    "test_hostile_answers.py",  # 82 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The integration files, longest first (the others after them, as collected); the
    order of tests inside a file, and of anything outside tests/integration, is kept."""
    here = Path(__file__).parent
    rank = {here / name: place for place, name in enumerate(LONGEST_FIRST)}

    def place(item: pytest.Item) -> int:
        if here not in item.path.parents:
            return -1
        return rank.get(item.path, len(rank))

    items.sort(key=place)


def booted_lab(persistent: bool = False) -> Iterator[fleet_lab.Lab]:
    """Two hosts, h1 and h2, in this worker's own lab (see `fleet_lab.test_prefix`),
    torn down when the module is done, even when a test failed."""
    if os.geteuid() != 0:
        pytest.skip("integration tests boot systemd-nspawn hosts and need root")
    prefix = fleet_lab.test_prefix()
    booted = fleet_lab.up(["h1", "h2"], prefix=prefix, persistent=persistent)
    try:
        yield booted
    finally:
        fleet_lab.down(prefix)


@pytest.fixture(scope="module")
def lab() -> Iterator[fleet_lab.Lab]:
    yield from booted_lab()


def _sha(name: str) -> str:
    return hashlib.sha256((STANDINS / name).read_bytes()).hexdigest()


def _hosts_and_agent(lab: fleet_lab.Lab) -> str:
    """The lab's two hosts, and the start of an `agent` service on h1 (its install)."""
    h1, h2 = lab.host("h1").address, lab.host("h2").address
    ssh = f"ssh_key: {lab.ssh_key}, ssh_known_hosts: {lab.known_hosts}"
    source = f"{STANDINS}/agent_standin.py"
    return f"""\
version: 1
hosts:
  h1: {{address: {h1}, {ssh}, role: primary}}
  h2: {{address: {h2}, {ssh}, role: backup}}
services:
  agent:
    host: h1
    install: {{kind: file, source: {source}, sha256: {_sha("agent_standin.py")}, dest: /usr/local/bin/agent}}"""


def lab_spec(lab: fleet_lab.Lab, extra: str = "") -> str:
    """A two-host spec for the lab: an agent with a config file on h1, Ollama with models on h2."""
    return f"""\
{_hosts_and_agent(lab)}
    unit:
      description: test agent
      exec_start: /usr/bin/python3 /usr/local/bin/agent --name a --log /var/log/agent.log --interval 1
      restart: always
    config_files:
      - {{path: /etc/agent/agent.conf, content: "mode = test\\n", mode: "0640"}}
    health:
      - {{kind: systemd}}
      - {{kind: file_fresh, path: /var/log/agent.log, max_age: 1m}}
    rto: 30s
  ollama:
    host: h2
    install: {{kind: file, source: {STANDINS}/http_standins.py, sha256: {_sha("http_standins.py")}, dest: /usr/local/bin/ollama}}
    unit:
      description: ollama stand-in
      exec_start: /usr/bin/python3 /usr/local/bin/ollama ollama --port 11434 --pull-seconds 0.2
    health:
      - {{kind: http, url: "http://{{address}}:11434/api/tags", json_key: models}}
    rto: 30s
models:
  - {{service: ollama, present: ["qwen2.5:1.5b", "llama3.2:3b"]}}
{extra}"""


def failover_spec(
    lab: fleet_lab.Lab,
    rpo: str = "1h",
    interval: str = "60s",
    paths: str = "[]",
    data_loss: str = "hold",
    grace: str = "20s",
    fence_after: str = "14s",
) -> str:
    """h1 (primary) runs an agent writing SQLite rows every 0.5 s, backed up to h2, which
    takes over after a 20 s grace; the lease lapses after 14 s."""
    return f"""\
{_hosts_and_agent(lab)}
    unit:
      description: test agent
      exec_start: /usr/bin/python3 /usr/local/bin/agent --name a --log /var/log/agent.log --interval 0.5 --metrics-db {DB}
      restart: always
      restart_sec: 1s
    health:
      - {{kind: systemd}}
    rto: 30s
backups:
  agentdata:
    host: h1
    sqlite: [{DB}]
    paths: {paths}
    schedule: hourly
    retention: {{keep_within: 30d}}
    rpo: {rpo}
    repository: sftp:root@h2:/srv/restic/h1
    password: env:RESTIC_PASSWORD
    init: true
failover:
  primary: h1
  backup: h2
  services: [agent]
  grace: {grace}
  fence_after: {fence_after}
  data_loss: {data_loss}
reconciler:
  interval: {interval}
  probe_interval: 2s
"""


def agent_rows(lab: fleet_lab.Lab, host: str) -> list[str]:
    """The failover agent's heartbeat rows on `host`, oldest first (ISO times)."""
    dump = (
        "import sqlite3,sys; print('\\n'.join(r[0] for r in sqlite3.connect(sys.argv[1])"
        ".execute('SELECT at FROM heartbeats ORDER BY at')))"
    )
    return fleet_lab.ssh(lab, host, f'python3 -c "{dump}" {DB}').split()


def reset_failover_pair(lab: fleet_lab.Lab) -> None:
    """Links up, the agent stopped; its data, its repository and the hosts' epochs gone: a
    new controller with a new journal would otherwise be refused by the fencing token, and
    a restore would pick the last world's higher-epoch snapshot."""
    for host in ("h1", "h2"):
        fleet_lab.restore_link(lab, host)
        fleet_lab.restore_route(lab, host, lab.gateway)
        fleet_lab.ssh(
            lab,
            host,
            "systemctl stop agent 2>/dev/null; systemctl reset-failed agent 2>/dev/null; "
            "rm -rf /var/lib/fleet-reconciler/fence /root/agent /srv/restic/h1; true",
        )


@pytest.fixture
def spec_file(lab: fleet_lab.Lab, tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(lab_spec(lab))
    return path


def run_reconcile(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`reconcile ARGS` in a subprocess, as a user runs it; never a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        input=stdin,
        cwd=ROOT,
        env=env,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def watch_passed(journal: Path, spec: Path, since: float) -> bool:
    """Whether a watch of `spec` started after `since` has finished its first full pass
    (its loop state, saved in the journal after each pass, counts it)."""
    saved = Journal(journal).loop_state(str(spec))
    return saved is not None and saved[0] >= since and saved[1].get("passes", 0) >= 1


def start_reconcile(
    *args: str, capture: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`reconcile ARGS` started in the background, for tests that act while it runs."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=output,
        text=True,
    )


def run_pyinfra(*args: str, spec: Path) -> subprocess.CompletedProcess[str]:
    """The plain pyinfra CLI over our deploys, for the state file `spec`."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "pyinfra"),
            *args,
            "deploys/inventory.py",
            "deploys/fleet.py",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "FLEET_STATE": str(spec)},
    )


def workers_of(parent: int) -> list[int]:
    """SSH worker processes started by `parent` (found by the parent pid in their env)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if f"FLEET_RECONCILER_PARENT_PID={parent}".encode() in env:
            found.append(int(environ.parent.name))
    return found
