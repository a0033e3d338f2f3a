"""Child-process entry point for everything that talks SSH through pyinfra.

The parent writes one JSON request to stdin and reads one JSON answer from stdout.
This process (and only this one) applies gevent's monkey patching, so the parent
never does; every pyinfra cycle gets a fresh process, which also contains pyinfra's
per-cycle leaks. Run as `python -m reconciler.ssh_worker`.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from pyinfra.api.host import Host as PyinfraHost  # noqa: E402

from reconciler.facts import HostSnapshot  # noqa: E402
from reconciler.pyinfra_session import SshTarget, open_session  # noqa: E402


def observe(request: dict[str, Any]) -> dict[str, Any]:
    """Read a HostSnapshot from every target; unreachable hosts come back with an error."""
    targets = [SshTarget(**t) for t in request["targets"]]
    wanted: dict[str, dict[str, list[str]]] = request["requests"]
    started = time.monotonic()

    def snapshot(host: PyinfraHost) -> dict[str, Any]:
        found: dict[str, Any] = host.get_fact(
            HostSnapshot, _timeout=int(request["command_timeout"]), **wanted[host.name]
        )
        return found

    with open_session(targets, request["connect_timeout"]) as session:
        results = session.per_host(snapshot, request["command_timeout"] + 1)
    elapsed = time.monotonic() - started
    answer: dict[str, Any] = {}
    for target in targets:
        if target.name in session.errors:
            answer[target.name] = {
                "reachable": False,
                "error": session.errors[target.name],
                "seconds": elapsed,
            }
            continue
        result = results[target.name]
        if isinstance(result, dict) and result.get("complete"):
            answer[target.name] = {"reachable": True, "snapshot": result, "seconds": elapsed}
        else:
            error = result if isinstance(result, str) else "incomplete answer from host"
            answer[target.name] = {"reachable": True, "error": error, "seconds": elapsed}
    return {"hosts": answer}


def apply(request: dict[str, Any]) -> dict[str, Any]:
    """Run the service deploys; see reconciler.run_deploys."""
    from reconciler.run_deploys import run_deploys

    return run_deploys(request)


OPERATIONS = {"observe": observe, "apply": apply}


def main() -> int:
    request = json.load(sys.stdin)
    answer = OPERATIONS[request["op"]](request)
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
