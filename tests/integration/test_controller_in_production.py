"""A controller in production, as the README's install section makes one: h2 plays a
blank Debian 12 VPS (the lab image: the README's apt line and a fleet host's packages,
no checkout, no venv). It gets the wheel (with its dependencies' wheels: the lab has no
package index) into a venv, then `reconcile install-controller` with two credentials, one sealed by systemd-creds.
The sandboxed watch unit converges h1, backs it up with the credential's password,
answers /readyz, checks the webhook's signature with the other credential, and says
how the fleet is in `systemctl status`; `reconcile doctor` is clean, then names a
missing tool and a key file others may read; systemd's score is the README's."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import lab as fleet_lab
from tests.integration.conftest import ROOT
from tests.integration.test_hostile_answers import wait_for

VENV = "/opt/fleet-reconciler/.venv"
RECONCILE = f"{VENV}/bin/reconcile"
STATE = "/srv/fleet/state/fleet.yaml"
HOOK_SECRET = "a webhook secret"
README_SCORE = re.search(r"rates it \*\*([\d.]+) OK\*\*", (ROOT / "README.md").read_text())


def on_c(lab: fleet_lab.Lab, command: str, check: bool = True, stdin: bytes = b"") -> str:
    return fleet_lab.ssh(lab, "h2", command, check=check, stdin=stdin)


def exit_code(lab: fleet_lab.Lab, command: str) -> tuple[int, str]:
    out = on_c(lab, f'{command}; echo "rc=$?"', check=False)
    body, _, code = out.rstrip().rpartition("rc=")
    return int(code), body


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Our wheel and its dependencies' wheels, as a tar for the controller."""
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        for wheel in sorted(out.glob("*.whl")):
            tar.add(wheel, arcname=wheel.name)
    return packed.getvalue()


def fleet_text(lab: fleet_lab.Lab) -> str:
    h1 = lab.host("h1").address
    return f"""\
version: 1
hosts:
  h1: {{address: {h1}, ssh_key: /root/.ssh/fleet_key, ssh_known_hosts: /srv/fleet/known_hosts}}
services:
  web:
    host: h1
    unit:
      description: a service the controller keeps running
      exec_start: /bin/sleep infinity
    health: [{{kind: systemd}}]
    rto: 30s
backups:
  etc:
    host: h1
    paths: [/srv/data]
    schedule: hourly
    retention: {{keep_within: 30d}}
    rpo: 2h
    repository: /srv/restic/h1
    password: cred:restic-password
    init: true
reconciler:
  interval: 1m
  probe_interval: 2s
source: {{url: 'file:///srv/fleet/fleet.git', branch: main, path: fleet.yaml, interval: 10m, webhook_secret: cred:webhook}}
"""


@pytest.fixture(scope="module")
def controller(lab: fleet_lab.Lab, wheelhouse: bytes) -> Iterator[fleet_lab.Lab]:
    """h2 as the README installs a controller, up to (not including) install-controller."""
    on_c(lab, "mkdir -p /root/wheels && tar -C /root/wheels -x", stdin=wheelhouse)
    on_c(lab, f"python3 -m venv {VENV}")
    on_c(lab, f"{VENV}/bin/pip install -q --no-index --find-links /root/wheels fleet-reconciler")
    on_c(
        lab,
        "install -m 600 -D /dev/stdin /root/.ssh/fleet_key",
        stdin=Path(lab.ssh_key).read_bytes(),
    )
    on_c(
        lab,
        "install -D /dev/stdin /srv/fleet/known_hosts",
        stdin=Path(lab.known_hosts).read_bytes(),
    )
    # Data another user owns, mode 0600: a drill restores it with its owner (the sandbox
    # must let restic chown, and the loop read it back).
    fleet_lab.ssh(lab, "h1", "install -d /srv/data && echo rows > /srv/data/owned")
    fleet_lab.ssh(lab, "h1", "chown 1000:1000 /srv/data/owned && chmod 600 /srv/data/owned")
    on_c(lab, "install -m 700 -d /etc/fleet-reconciler/credentials")
    for name, value in (("restic-password", "a restic password"), ("webhook", HOOK_SECRET)):
        path = f"/etc/fleet-reconciler/credentials/{name}"
        on_c(lab, f"install -m 600 /dev/stdin {path}", stdin=value.encode())
    # The webhook's secret sealed for systemd (the host key: no TPM in a container).
    sealed = "/etc/fleet-reconciler/credentials/webhook"
    on_c(lab, f"systemd-creds encrypt --name=webhook {sealed} {sealed}.cred && rm {sealed}")
    git = "git -c user.name=ops -c user.email=ops@lab -c init.defaultBranch=main"
    on_c(lab, f"{git} init -q --bare /srv/fleet/fleet.git && {git} init -q /srv/fleet/state")
    on_c(lab, f"cat > {STATE}", stdin=fleet_text(lab).encode())
    on_c(
        lab,
        f"cd /srv/fleet/state && {git} add fleet.yaml && {git} commit -q -m first "
        "&& git push -q /srv/fleet/fleet.git main",
    )
    yield lab
    on_c(lab, "systemctl stop fleet-reconciler-watch.service", check=False)


def active(lab: fleet_lab.Lab, host: str, unit: str) -> bool:
    return fleet_lab.ssh(lab, host, f"systemctl is-active {unit}", check=False).strip() == "active"


def http_code(lab: fleet_lab.Lab, url: str, *curl: str, body: bytes = b"") -> str:
    flags = " ".join(curl)
    return on_c(lab, f"curl -s -o /dev/null -w '%{{http_code}}' {flags} {url}", stdin=body)


def events(lab: fleet_lab.Lab) -> list[str]:
    """The installed watch's journal: each event's kind and message, oldest first."""
    query = "SELECT kind || ' ' || message FROM events ORDER BY at"
    return on_c(lab, f'sqlite3 /var/lib/fleet-reconciler/journal.db "{query}"').splitlines()


def test_an_installed_controller_converges_pages_and_answers(controller: fleet_lab.Lab) -> None:
    lab = controller
    assert on_c(lab, f"{RECONCILE} --version").startswith("fleet-reconciler ")

    # Refused before anything is written: a cred: reference no --credential gives.
    code, said = exit_code(lab, f"{RECONCILE} install-controller {STATE} 2>&1")
    assert code == 1 and "cred:restic-password is given to the service by no --credential" in said
    unit_file = "/etc/systemd/system/fleet-reconciler-watch.service"
    assert "No such file" in on_c(lab, f"ls {unit_file} 2>&1", check=False)

    install = (
        f"{RECONCILE} install-controller {STATE} --http 127.0.0.1:9300 --hooks 127.0.0.1:9301 "
        "--credential restic-password=/etc/fleet-reconciler/credentials/restic-password "
        "--credential-encrypted webhook=/etc/fleet-reconciler/credentials/webhook.cred"
    )
    code, said = exit_code(lab, f"{install} 2>&1")
    assert code == 0, said
    assert on_c(lab, "stat -c %a /etc/fleet-reconciler/environment").strip() == "600"

    wait_for("the watch active", lambda: active(lab, "h2", "fleet-reconciler-watch"), 60)
    wait_for("web active on h1", lambda: active(lab, "h1", "web"), 120)
    # The first pass backs up (the credential's password) and drills the policy: a
    # restore of another user's 0600 file into the sandbox's scratch directory.
    wait_for("the first drill", lambda: [e for e in events(lab) if e.startswith("drill_")], 180)
    assert any(e.startswith("drill_passed backup etc: drill passed") for e in events(lab))
    assert not [e for e in events(lab) if "failed" in e.split()[0]], events(lab)
    restic = "RESTIC_PASSWORD='a restic password' restic -r /srv/restic/h1 snapshots --json"
    assert json.loads(fleet_lab.ssh(lab, "h1", restic))

    wait_for("/readyz 200", lambda: http_code(lab, "http://127.0.0.1:9300/readyz") == "200", 60)
    assert http_code(lab, "http://127.0.0.1:9300/healthz") == "200"
    status = "systemctl show -p StatusText --value fleet-reconciler-watch"
    wait_for("STATUS= after a pass", lambda: "passes" in on_c(lab, status), 60)

    # The webhook's secret is the other credential: a wrong signature is refused.
    hook, body = "http://127.0.0.1:9301/hooks/gitea", b'{"ref": "refs/heads/main"}'
    wrong = hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
    signed = ("--data-binary @-", "-H 'X-Gitea-Signature: {}'")
    assert http_code(lab, hook, signed[0], signed[1].format(wrong), body=body) == "401"
    right = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert http_code(lab, hook, signed[0], signed[1].format(right), body=body) == "202"

    # A person's one-shot command on the controller reads the unit's credentials.
    listed = on_c(lab, f"cd /srv/fleet/state && {RECONCILE} backup list etc {STATE} -o json")
    assert json.loads(listed), listed

    # The sandbox as systemd measures the running unit: the README's score.
    security = on_c(lab, "systemd-analyze security fleet-reconciler-watch.service 2>&1")
    measured = re.search(r"Overall exposure level for \S+: ([\d.]+)", security)
    assert README_SCORE and measured, security
    assert measured[1] == README_SCORE[1], security


def test_doctor_is_clean_then_names_what_is_wrong(controller: fleet_lab.Lab) -> None:
    lab = controller
    doctor = f"{RECONCILE} doctor {STATE}"
    # Clean: every check passes, but the clock's. A container may not ask the kernel
    # (nspawn filters adjtimex: a warning, no failure), and a kernel without NTP here
    # is rightly a failure; either way the clock is the only line that is not ok.
    code, said = exit_code(lab, f"{doctor} 2>&1")
    lines = [line for line in said.splitlines() if line[:4] in ("ok  ", "warn", "FAIL")]
    assert len(lines) == 14, said
    assert [line for line in lines if not line.startswith("ok")] in (
        [],
        ["warn  clock: adjtimex failed"],
        ["FAIL  clock: not synchronised (start chrony or systemd-timesyncd)"],
    ), said
    assert code == (1 if "FAIL" in said else 0), said
    assert "every reference resolves, as fleet-reconciler-watch.service sees them" in said

    on_c(lab, "mv /usr/bin/age /usr/bin/age.away && chmod 644 /root/.ssh/fleet_key")
    try:
        code, said = exit_code(lab, f"{doctor} 2>&1")
    finally:
        on_c(lab, "mv /usr/bin/age.away /usr/bin/age && chmod 600 /root/.ssh/fleet_key")
    assert code == 1, said
    assert "FAIL  tool age: not found on PATH" in said, said
    assert re.search(r"FAIL  ssh key /root/.ssh/fleet_key: .* is mode 0644", said), said
    assert "a restic password" not in said and HOOK_SECRET not in said
