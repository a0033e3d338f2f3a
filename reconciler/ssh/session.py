"""One pyinfra cycle: a fresh Inventory and State, parallel connects, clean teardown.

Only ever used inside the child process (`reconciler.ssh.worker`) that has applied
gevent's monkey patching, so the parent stays free of gevent (see NOTES-libraries:
patching a process that also runs asyncio, httpx or watchfiles stalls it).

Known pyinfra 3 pitfalls handled here:
- an Inventory cannot be reused across cycles, so each session builds a new one;
- `disconnect_all` leaves paramiko clients open, so we close them ourselves;
- paramiko does not set TCP_NODELAY (about 40 ms per command), so we set it;
- a cut link would stall a command (and so the whole cycle) until TCP gives up, after
  many minutes: SSH keepalives plus TCP_USER_TIMEOUT fail that host in DEAD_LINK_S.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import gevent
from pyinfra.api.config import Config
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State

from reconciler.ssh.protocol import SshTarget

T = TypeVar("T")
KEEPALIVE_S = 3
DEAD_LINK_S = 15.0


@dataclass
class Session:
    """Connected hosts by name, and the reason each unconnected host failed."""

    state: State
    hosts: dict[str, PyinfraHost] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def per_host(self, work: Callable[[PyinfraHost], T], timeout: float) -> dict[str, T | str]:
        """Run `work` on every connected host in parallel; a failure or timeout is a string."""
        jobs = {
            name: gevent.spawn(_bounded, work, host, timeout) for name, host in self.hosts.items()
        }
        gevent.joinall(list(jobs.values()))
        return {name: job.value for name, job in jobs.items()}


def _bounded(work: Callable[[PyinfraHost], T], host: PyinfraHost, timeout: float) -> T | str:
    try:
        with gevent.Timeout(timeout, TimeoutError(f"no answer within {timeout:g}s")):
            return work(host)
    except Exception as exc:  # reported per host, never raised: one host must not stop the rest
        return f"error: {type(exc).__name__}: {exc}"


@contextlib.contextmanager
def open_session(targets: list[SshTarget], connect_timeout: float) -> Iterator[Session]:
    """Connect to all targets in parallel; yield the Session; always close every client."""
    # Bound every SSH phase (TCP, banner, auth), so a hung host costs one timeout.
    limits = {"banner_timeout": connect_timeout, "auth_timeout": connect_timeout}
    names_data = [
        (t.name, {**t.inventory_data(), "ssh_paramiko_connect_kwargs": limits}) for t in targets
    ]
    inventory = Inventory((names_data, {}))  # type: ignore[no-untyped-call]
    config = Config(  # type: ignore[no-untyped-call]
        CONNECT_TIMEOUT=max(1, int(connect_timeout)), FAIL_PERCENT=None
    )
    state = State(inventory, config)
    session = Session(state)
    jobs = {host.name: gevent.spawn(_connect, host, connect_timeout) for host in inventory}
    gevent.joinall(list(jobs.values()))
    for host in inventory:
        error = jobs[host.name].value
        if error is None:
            session.hosts[host.name] = host
            state.activate_host(host)
        else:
            session.errors[host.name] = error
    try:
        yield session
    finally:
        for host in inventory:
            _close(host)


def _connect(host: PyinfraHost, timeout: float) -> str | None:
    started = time.monotonic()
    try:
        with gevent.Timeout(timeout + 1, TimeoutError(f"connect timed out after {timeout:g}s")):
            host.connect(show_errors=False, raise_exceptions=True)
    except Exception as exc:  # an unreachable host is an observed fact, not a crash
        elapsed = time.monotonic() - started
        message = str(exc) or type(exc).__name__
        if elapsed >= timeout * 0.9:
            return f"no SSH answer within {elapsed:.0f}s (host slow or hung): {message}"
        return host_key_problem(host.data, message) or message
    transport = getattr(host.connector, "client").get_transport()  # noqa: B009
    if transport is not None and transport.sock is not None:
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A link that dies mid-command must fail this host within seconds, not hang the
        # cycle: keepalives keep data in flight, and unacknowledged data closes the socket.
        transport.set_keepalive(KEEPALIVE_S)
        transport.sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(DEAD_LINK_S * 1000)
        )
    return None


def host_key_problem(data: object, message: str) -> str | None:
    """A clear line for a refused host key (unknown or changed), else None."""
    address = getattr(data, "ssh_hostname", "?")
    port = getattr(data, "ssh_port", 22)
    known = getattr(data, "ssh_known_hosts_file", "~/.ssh/known_hosts")
    if "No host key for" in message:
        scan = f"ssh-keyscan -p {port} {address}" if port != 22 else f"ssh-keyscan {address}"
        return (
            f"host key of {address} is not in {known}, so the host is refused; check its "
            f"fingerprint out of band, then add it ({scan} >> {known}), or set "
            "host_key_policy: trust-on-first-use for this host"
        )
    if "does not match" in message or "BadHostKey" in message:
        return (
            f"host key of {address} has CHANGED since it was recorded in {known}: refusing "
            "the host (a reinstalled host, or someone in the middle); verify it, then "
            f"replace its line in {known}"
        )
    return None


def _close(host: PyinfraHost) -> None:
    client = getattr(host.connector, "client", None)
    with contextlib.suppress(Exception):
        host.disconnect()
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
