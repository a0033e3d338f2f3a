"""Child-process entry point for everything that talks SSH through pyinfra.

The parent writes one `RequestEnvelope` to stdin and reads one answer from stdout.
This process (and only this one) applies gevent's monkey patching, so the parent
never does; every pyinfra cycle gets a fresh process, which also contains pyinfra's
per-cycle leaks. Run as `python -m reconciler.ssh.worker`.
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

import time  # noqa: E402

from pyinfra.api.host import Host as PyinfraHost  # noqa: E402

from reconciler.ssh.facts import HostSnapshot  # noqa: E402
from reconciler.ssh.protocol import (  # noqa: E402
    ApplyRequest,
    HostObservation,
    ObserveAnswer,
    ObserveRequest,
    RequestEnvelope,
    Snapshot,
)
from reconciler.ssh.session import open_session  # noqa: E402


def observe(request: ObserveRequest) -> ObserveAnswer:
    """Read a HostSnapshot from every target; unreachable hosts come back with an error."""
    started = time.monotonic()
    command_timeout = request.timeouts.command

    def snapshot(host: PyinfraHost) -> Snapshot:
        reads = request.reads[host.name]
        found: Snapshot = host.get_fact(
            HostSnapshot, _timeout=int(command_timeout), **reads.model_dump()
        )
        return found

    with open_session(request.targets, request.timeouts.connect) as session:
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


def main() -> int:
    request = RequestEnvelope.model_validate_json(sys.stdin.read()).request
    if isinstance(request, ApplyRequest):
        from reconciler.ssh.deploy_runner import run_deploys

        sys.stdout.write(run_deploys(request).model_dump_json())
    else:
        sys.stdout.write(observe(request).model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
