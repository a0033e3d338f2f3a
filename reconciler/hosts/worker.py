"""Child-process entry point for everything that talks SSH through pyinfra.

The parent writes one `RequestEnvelope` per line to stdin and reads one answer line
from stdout, until it closes stdin. This process (and only this one) applies gevent's
monkey patching, so the parent never does. Every request gets a fresh pyinfra
Inventory and State; the SSH connections are kept across requests (the daemon keeps
one worker for its lifetime; a one-shot command sends one request and closes).
Run as `python -m reconciler.hosts.worker`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Get SIGKILL when the parent dies, so a killed controller leaves no worker behind
    still deploying; exit now if it is already gone (it died before we got here)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    expected = os.environ.get("FLEET_RECONCILER_PARENT_PID")
    if expected and os.getppid() != int(expected):
        os._exit(1)


die_with_parent()

from gevent import monkey  # noqa: E402

monkey.patch_all()

import shlex  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from gevent.socket import wait_read  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from pyinfra.api.host import Host as PyinfraHost  # noqa: E402

from reconciler.hosts.facts import HostSnapshot  # noqa: E402
from reconciler.hosts.protocol import (  # noqa: E402
    ApplyAnswer,
    ApplyRequest,
    ClaimRequest,
    HostApplyAnswer,
    HostObservation,
    ObserveAnswer,
    ObserveRequest,
    OpResult,
    RequestEnvelope,
    Snapshot,
    StartRequest,
)
from reconciler.hosts.session import KeptConnections, open_session  # noqa: E402
from reconciler.untrusted.text import shown  # noqa: E402
from state.fence import controller_token_command  # noqa: E402
from state.layout import unit_file  # noqa: E402

START_RETRY_S = 1.0


def observe(request: ObserveRequest, kept: KeptConnections | None = None) -> ObserveAnswer:
    """Read a HostSnapshot from every target; unreachable hosts come back with an error."""
    started = time.monotonic()
    command_timeout = request.timeouts.command

    def snapshot(host: PyinfraHost) -> Snapshot:
        reads = request.reads[host.name]
        found: Snapshot = host.get_fact(
            HostSnapshot, _timeout=int(command_timeout), **reads.model_dump()
        )
        return found

    if kept is not None and request.whole_fleet:
        kept.retain({t.name for t in request.targets})
    with open_session(request.targets, request.timeouts.connect, kept) as session:
        results = session.per_host(snapshot, command_timeout + 1)
    elapsed = time.monotonic() - started
    answer: dict[str, HostObservation] = {}
    for target in request.targets:
        if target.name in session.errors:
            answer[target.name] = HostObservation(
                reachable=False, error=session.errors[target.name], seconds=elapsed
            )
            continue
        result = results[target.name]
        if isinstance(result, Snapshot) and result.complete:
            answer[target.name] = HostObservation(reachable=True, snapshot=result, seconds=elapsed)
        else:
            error = result if isinstance(result, str) else "incomplete answer from host"
            answer[target.name] = HostObservation(reachable=True, error=error, seconds=elapsed)
    return ObserveAnswer(hosts=answer)


def start(request: StartRequest, kept: KeptConnections | None = None) -> ApplyAnswer:
    """`systemctl start` each listed unit, one command per unit, over the SSH connection."""
    started = time.monotonic()
    timeout = int(request.timeouts.command)
    targets = [t for t in request.targets if t.name in request.units]

    def start_units(host: PyinfraHost) -> list[OpResult]:
        results = []
        for name in request.units[host.name]:
            command = f"systemctl start -- {shlex.quote(unit_file(name))}"
            label = f"fast start | {name}: {command}"
            ok, output = host.run_shell_command(command, _timeout=timeout)
            if not ok:
                # One more try a second later: a start right after a stop can fail while
                # the old control group is still being torn down (status=219/CGROUP);
                # the second start joins any restart systemd itself has scheduled.
                time.sleep(START_RETRY_S)
                ok, output = host.run_shell_command(command, _timeout=timeout)
                label += " (second attempt)"
            status = "changed" if ok else "error"
            stderr = "" if ok else shown("\n".join(output.stderr_lines[-5:])[-2000:])
            results.append(OpResult(name=label, status=status, stderr=stderr))
        return results

    with open_session(targets, request.timeouts.connect, kept) as session:
        results = session.per_host(start_units, timeout + 1)
    answer = {
        name: HostApplyAnswer(connected=False, error=f"unreachable: {error}")
        for name, error in session.errors.items()
    }
    for name, ops in results.items():
        if isinstance(ops, str):
            answer[name] = HostApplyAnswer(connected=True, error=ops)
            continue
        failed = [op for op in ops if op.status == "error"]
        error = f"{failed[0].name}: {failed[0].stderr}" if failed else None
        answer[name] = HostApplyAnswer(connected=True, error=error, ops=ops)
    return ApplyAnswer(hosts=answer, seconds=time.monotonic() - started)


def claim(request: ClaimRequest, kept: KeptConnections | None = None) -> ApplyAnswer:
    """Claim the fencing token on every target, over its SSH connection (one command
    each, in parallel); a host that refuses it answers with the refusal as its error."""
    started = time.monotonic()
    timeout = int(request.timeouts.command)
    command = controller_token_command(request.token, request.controller)

    def claim_on(host: PyinfraHost) -> str | None:
        ok, output = host.run_shell_command(command, _timeout=timeout)
        return None if ok else shown("\n".join(output.stderr_lines[-3:])[-2000:]) or "failed"

    with open_session(request.targets, request.timeouts.connect, kept) as session:
        results = session.per_host(claim_on, timeout + 1)
    answer = {
        name: HostApplyAnswer(connected=False, error=f"unreachable: {error}")
        for name, error in session.errors.items()
    }
    for name, error in results.items():
        answer[name] = HostApplyAnswer(connected=True, error=error)
    return ApplyAnswer(hosts=answer, seconds=time.monotonic() - started)


def requests() -> Iterator[str]:
    """Request lines from stdin until it closes; waiting lets other greenlets run."""
    while True:
        wait_read(sys.stdin.fileno())
        line = sys.stdin.readline()
        if not line:
            return
        if line.strip():
            yield line


def answer(
    request: ObserveRequest | ApplyRequest | StartRequest | ClaimRequest, kept: KeptConnections
) -> BaseModel:
    if isinstance(request, ApplyRequest):
        # start-up: an observe never loads the deploys
        from reconciler.hosts.deploy_runner import run_deploys

        return run_deploys(request, kept)
    if isinstance(request, StartRequest):
        return start(request, kept)
    if isinstance(request, ClaimRequest):
        return claim(request, kept)
    return observe(request, kept)


def main() -> int:
    kept = KeptConnections()
    try:
        for line in requests():
            request = RequestEnvelope.model_validate_json(line).request
            sys.stdout.write(answer(request, kept).model_dump_json() + "\n")
            sys.stdout.flush()
    finally:
        kept.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
