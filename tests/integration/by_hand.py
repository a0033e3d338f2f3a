"""Converge a lab by hand, over plain `ssh`, as an operator following the runbook would.

This is the independent oracle for the dry-run tests: it shares no code with
apply, only the spec renderers that define what "converged" means.
"""

from __future__ import annotations

import time

import httpx

from state.load import LoadedFleet
from state.render import render_config, render_unit
from state.spec.services import FileInstall
from tests.fleet import lab as fleet_lab


def write(lab: fleet_lab.Lab, host: str, path: str, data: bytes, mode: str) -> None:
    fleet_lab.ssh(lab, host, f"install -D -m {mode} /dev/stdin {path}", stdin=data)


def converge_by_hand(lab: fleet_lab.Lab, loaded: LoadedFleet) -> None:
    for name, service in loaded.fleet.services.items():
        if isinstance(service.install, FileInstall):
            data = loaded.resolve(service.install.source).read_bytes()
            write(lab, service.host, service.install.dest, data, service.install.mode)
        for config in service.config_files:
            content = render_config(loaded, name, config).encode()
            write(lab, service.host, config.path, content, config.mode)
        if service.unit is not None:
            unit = render_unit(service.unit).encode()
            write(lab, service.host, f"/etc/systemd/system/{name}.service", unit, "0644")
            fleet_lab.ssh(
                lab,
                service.host,
                f"systemctl daemon-reload && systemctl enable --now {name}.service",
            )
    for model_set in loaded.fleet.models:
        address = loaded.fleet.hosts[loaded.fleet.services[model_set.service].host].address
        endpoint = model_set.endpoint.format(address=address)
        wait_http(f"{endpoint}/api/tags")
        for model in model_set.present:
            httpx.post(f"{endpoint}/api/pull", json={"model": model}, timeout=30).raise_for_status()


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not answering after {timeout}s")


FOOTPRINT = (
    "systemctl list-units --all --no-legend --plain | awk '{print $1, $2, $3, $4}' | sort; "
    "find /etc /usr/local /var/lib /root -xdev -printf '%p %s %T@ %m\\n' 2>/dev/null | sort"
)


def footprint(lab: fleet_lab.Lab, host: str) -> str:
    """Units with their states, and path/size/mtime/mode of every file we might touch."""
    return fleet_lab.ssh(lab, host, FOOTPRINT)


def settled_footprint(lab: fleet_lab.Lab, host: str, timeout: float = 15.0) -> str:
    """The footprint once two reads a second apart agree: what a host changes by itself
    (a unit a finished boot still starts, a user manager's linger ending) is not
    counted against the command under test."""
    deadline, last = time.monotonic() + timeout, footprint(lab, host)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if (now := footprint(lab, host)) == last:
            return now
        last = now
    return last


def changed_lines(before: str, after: str) -> str:
    """What differs between two footprints, as `-`/`+` lines (a failure's message)."""
    old, new = before.splitlines(), after.splitlines()
    gone = [f"- {line}" for line in old if line not in set(new)]
    return "\n".join(gone + [f"+ {line}" for line in new if line not in set(old)])
