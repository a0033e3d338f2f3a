"""The second opinion: can the backup host reach the primary? Asked over SSH, answered
by TCP connects from the backup to the primary's SSH port and the failover services'
ports. Read-only on both hosts."""

from __future__ import annotations

import contextlib
import shlex
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from reconciler.hosts.probes import probe_http, probe_tcp
from reconciler.hosts.remote import run_remote
from state.repository import is_ip
from state.spec.fleet import Fleet
from state.spec.services import HttpCheck, TcpCheck

WITNESS_TIMEOUT_S = 10.0
PROBE = (  # every port at once: the answer takes one connect timeout, not one per port
    "import socket, sys, threading\n"
    "seen = []\n"
    "def knock(port):\n"
    "    try:\n"
    "        socket.create_connection((sys.argv[1], int(port)), 1.5).close()\n"
    "        seen.append(port)\n"
    "    except OSError:\n"
    "        pass\n"
    "knocks = [threading.Thread(target=knock, args=(p,)) for p in sys.argv[2:]]\n"
    "for k in knocks: k.start()\n"
    "for k in knocks: k.join()\n"
    "print('open', *sorted(seen, key=int))\n"
)


@dataclass(frozen=True)
class Witness:
    asked: bool
    sees_primary: bool
    detail: str


def primary_ports(fleet: Fleet) -> list[int]:
    """The primary's SSH port and every port the failover services are checked on."""
    assert fleet.failover is not None
    primary = fleet.hosts[fleet.failover.primary]
    ports = {primary.ssh_port}
    for name in fleet.failover.services:
        for check in fleet.services[name].health:
            if isinstance(check, TcpCheck):
                ports.add(check.port)
            elif isinstance(check, HttpCheck):
                url = urlsplit(check.url.format(address=primary.address))
                ports.add(url.port or (443 if url.scheme == "https" else 80))
    return sorted(ports)


def primary_answers(fleet: Fleet, client: httpx.Client) -> bool:
    """Whether any HTTP or TCP health check of a failover service passes on the primary
    (the controller's second way to reach it when SSH fails). `fleet` as written."""
    assert fleet.failover is not None
    address = fleet.hosts[fleet.failover.primary].address
    for name in fleet.failover.services:
        for check in fleet.services[name].health:
            if isinstance(check, HttpCheck) and probe_http(client, check, address).healthy:
                return True
            if isinstance(check, TcpCheck) and probe_tcp(check, address).healthy:
                return True
    return False


def ask_backup(fleet: Fleet) -> Witness:
    """Whether the backup host reaches the primary (`fleet` as written, not placed)."""
    assert fleet.failover is not None
    backup = fleet.hosts[fleet.failover.backup]
    primary = fleet.hosts[fleet.failover.primary]
    ports = primary_ports(fleet)
    command = " ".join(
        ["python3", "-c", shlex.quote(PROBE), shlex.quote(primary.address), *map(str, ports)]
    )
    answer = run_remote(backup, command, WITNESS_TIMEOUT_S)
    if not answer.ok:
        return Witness(False, False, f"backup {fleet.failover.backup}: {answer.error}")
    seen = answer.stdout.split()[1:]
    if seen:
        return Witness(True, True, f"backup reaches {primary.address} on port(s) {' '.join(seen)}")
    tried = " ".join(map(str, ports))
    return Witness(True, False, f"backup cannot reach {primary.address} on port(s) {tried}")


def is_local_address(address: str) -> bool:
    """Whether this machine owns `address` (an IP literal): binding to it succeeds only
    then. Nothing is sent, and names are not resolved."""
    if address in ("localhost", "::1") or address.startswith("127."):
        return True
    if not is_ip(address):
        return False
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((address, 0))
        return True
    return False


def witness_warning(fleet: Fleet) -> str | None:
    """A warning when this controller runs on the primary or the backup: then it is no
    witness, and a partition that cuts it off with one of them decides wrongly."""
    if fleet.failover is None:
        return None
    for role, name in (("primary", fleet.failover.primary), ("backup", fleet.failover.backup)):
        if is_local_address(fleet.hosts[name].address):
            return (
                f"this controller is the failover {role} {name} ({fleet.hosts[name].address}): "
                "run it on a third machine, or it is no witness (README, Failover)"
            )
    return None
