"""One pyinfra cycle: a fresh Inventory and State, parallel connects, clean teardown.

A long-lived worker passes `KeptConnections`: each cycle still gets a fresh Inventory
and State (pyinfra's objects are never reused), over SSH clients kept open across
cycles; a kept client is checked with one round trip before use and replaced when dead.

Only ever used inside the child process (`reconciler.hosts.worker`) that has applied
gevent's monkey patching, so the parent stays free of gevent (see NOTES-libraries:
patching a process that also runs asyncio, httpx or watchfiles stalls it).

Known pyinfra 3 pitfalls handled here:
- an Inventory cannot be reused across cycles, so each session builds a new one;
- `disconnect_all` leaves paramiko clients open, so we close them ourselves;
- paramiko does not set TCP_NODELAY (about 40 ms per command), so we set it;
- a cut link would stall a command (and so the whole cycle) until TCP gives up, after
  many minutes: SSH keepalives plus TCP_USER_TIMEOUT fail that host in DEAD_LINK_S;
- paramiko remembers every channel id a transport ever opened (paramiko#1685), so a
  kept connection grows by two ids a pass; only the newest CHANNELS_REMEMBERED are kept.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gevent
import gevent.pool
import pyinfra.api.connectors
import pyinfra.api.inventory
from pyinfra.api.config import Config
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State
from pyinfra.connectors.ssh import SSHConnector

from reconciler.hosts.protocol import SshTarget

T = TypeVar("T")
# New SSH handshakes under way at once. Each costs both ends a key exchange; 200 started
# together on a small controller take longer than the connect timeout, and hosts that
# answer are then reported unreachable. A fleet of up to 64 hosts connects all at once.
CONNECTS_AT_ONCE = 64
KEEPALIVE_S = 3
DEAD_LINK_S = 15.0
CHANNELS_REMEMBERED = 256


def _look_connectors_up_once() -> None:
    """pyinfra finds its connectors in the installed packages' metadata for every new
    Inventory: 10 ms of CPU per host, half a probe pass. They cannot change while a
    worker lives, so the first answer is kept."""
    found = functools.cache(pyinfra.api.connectors.get_all_connectors)
    pyinfra.api.connectors.get_all_connectors = found
    setattr(pyinfra.api.inventory, "get_all_connectors", found)  # noqa: B010 (imported by name)


_look_connectors_up_once()


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


class KeptConnections:
    """SSH clients kept open across cycles, by host name and exactly how it is reached."""

    def __init__(self) -> None:
        self.clients: dict[str, tuple[str, Any]] = {}

    def attach(self, host: PyinfraHost, reach: str, timeout: float) -> bool:
        """Give `host` its kept client if it is still alive; False to connect afresh."""
        kept = self.clients.get(host.name)
        if kept is None:
            return False
        if kept[0] != reach or not _alive(kept[1], timeout):
            self.drop(host.name)
            return False
        _forget_old_channels(kept[1].get_transport())
        setattr(host.connector, "client", kept[1])  # noqa: B010
        host.connected = True
        return True

    def keep(self, host: PyinfraHost, reach: str) -> None:
        self.clients[host.name] = (reach, getattr(host.connector, "client"))  # noqa: B009

    def holds(self, host: PyinfraHost) -> bool:
        kept = self.clients.get(host.name)
        return kept is not None and kept[1] is getattr(host.connector, "client", None)

    def retain(self, names: set[str]) -> None:
        """Close the connections to hosts no longer named (a host left the fleet)."""
        for name in set(self.clients) - names:
            self.drop(name)

    def drop(self, name: str) -> None:
        reach_client = self.clients.pop(name, None)
        if reach_client is not None:
            with contextlib.suppress(Exception):
                reach_client[1].close()

    def close(self) -> None:
        for name in list(self.clients):
            self.drop(name)


def _alive(client: Any, timeout: float) -> bool:
    """One round trip on the kept transport: opening a channel needs the server's answer."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        return False
    try:
        with gevent.Timeout(timeout, TimeoutError("no answer")):
            transport.open_session(timeout=timeout).close()
    except Exception:  # a dead or half-open connection: connect afresh
        return False
    return True


def _forget_old_channels(transport: Any) -> None:
    """Trim paramiko's record of closed channels to the newest CHANNELS_REMEMBERED ids.

    The record lets a late message for a closed channel be ignored rather than end the
    connection; paramiko never trims it (issue 1685). Called between cycles, after a round
    trip that follows every earlier message on the connection; a message for a channel
    hundreds of passes old would at worst end the connection, which the next cycle's
    liveness check replaces.
    """
    seen: dict[int, bool] = transport.channels_seen
    excess = len(seen) - CHANNELS_REMEMBERED
    if excess <= 0:
        return
    live = {channel.chanid for channel in transport._channels.values()}
    for chanid in [c for c in itertools.islice(seen, excess) if c not in live]:
        del seen[chanid]


def _reach(target: SshTarget) -> str:
    return json.dumps(target.data, sort_keys=True, default=str)


@contextlib.contextmanager
def open_session(
    targets: list[SshTarget], connect_timeout: float, kept: KeptConnections | None = None
) -> Iterator[Session]:
    """Connect to all targets in parallel (or reuse `kept` clients); yield the Session;
    close every client that is not kept."""
    # Bound every SSH phase (TCP, banner, auth), so a hung host costs one timeout.
    limits = {"banner_timeout": connect_timeout, "auth_timeout": connect_timeout}
    names_data = [
        (t.name, {**t.inventory_data(), "ssh_paramiko_connect_kwargs": limits}) for t in targets
    ]
    inventory = Inventory((names_data, {}))  # type: ignore[no-untyped-call]
    config = Config(  # type: ignore[no-untyped-call]
        CONNECT_TIMEOUT=max(1, int(connect_timeout)), FAIL_PERCENT=None
    )
    # As `pyinfra -y` does: no dry evaluation of each operation while deploys are added
    # (it reads every fact once more). Our plan already says what changes; operations
    # read their facts when they run, and `_if=` conditions see what really ran.
    state = State(inventory, config, check_for_changes=False)
    session = Session(state)
    reach = {t.name: _reach(t) for t in targets}

    def connect(host: PyinfraHost) -> str | None:
        if kept is not None and kept.attach(host, reach[host.name], connect_timeout):
            return None
        error = _connect(host, connect_timeout)
        if error is None and kept is not None:
            kept.keep(host, reach[host.name])
        return error

    handshakes = gevent.pool.Pool(CONNECTS_AT_ONCE)  # a kept connection's check is quick
    jobs = {host.name: handshakes.spawn(connect, host) for host in inventory}
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
        _forget_cycle_caches()
        for host in inventory:
            if kept is None or not kept.holds(host):
                _close(host)


def _forget_cycle_caches() -> None:
    """pyinfra memoizes in process-wide dicts: each connector's SFTP client, keyed by the
    connector's repr (in a long-lived worker that leaks, and a new connector at a reused
    address would get a dead client), and each host's temp directory, keyed by its name
    (holding the first cycle's Host and State for ever). Forget both after every cycle."""
    transfers: dict[str, Any] = getattr(SSHConnector.get_file_transfer_connection, "cache", {})
    for client in transfers.values():
        with contextlib.suppress(Exception):
            client.close()
    transfers.clear()
    getattr(PyinfraHost._get_temp_directory, "cache", {}).clear()


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
