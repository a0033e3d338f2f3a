"""The leader's fencing token, claimed on each host before an apply changes it: a host
refuses a token lower than the highest it has seen (state.fence), so a controller that
was paused past its lease and still believes it leads cannot write after waking up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reconciler.errors import ObserveError
from reconciler.hosts.client import WarmWorker, run_worker
from reconciler.hosts.protocol import ApplyAnswer, ClaimRequest, SshTarget, Timeouts
from reconciler.hosts.remote import Remote, run_remote
from state.fence import controller_token_command
from state.spec.hosts import Host
from state.ssh import pyinfra_host_data

CLAIM_TIMEOUT_S = 10.0


def claim_token(
    hosts: dict[str, Host], token: int, controller: str, ssh: WarmWorker | None = None
) -> dict[str, Remote]:
    """Claim `token` on every host at once; each host's answer, by name. With `ssh` (the
    daemon's worker), over its kept connections: a heal pays one command, not a new SSH
    connection."""
    command = controller_token_command(token, controller)  # refuses a malformed claim
    if not hosts:
        return {}
    if ssh is not None:
        return _over_worker(hosts, token, controller, ssh)
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        answers = pool.map(lambda h: run_remote(h, command, CLAIM_TIMEOUT_S), hosts.values())
        return dict(zip(hosts, answers, strict=True))


def _over_worker(
    hosts: dict[str, Host], token: int, controller: str, ssh: WarmWorker
) -> dict[str, Remote]:
    request = ClaimRequest(
        targets=[SshTarget(name=n, data=pyinfra_host_data(h)) for n, h in hosts.items()],
        token=token,
        controller=controller,
        timeouts=Timeouts(command=CLAIM_TIMEOUT_S),
    )
    try:
        answer = run_worker(request, ApplyAnswer, CLAIM_TIMEOUT_S + 10, ssh)
    except ObserveError as exc:  # the worker failed: no host confirmed the claim
        return {name: Remote(False, error=str(exc)) for name in hosts}
    found = {n: Remote(a.error is None, error=a.error or "") for n, a in answer.hosts.items()}
    return {name: found.get(name, Remote(False, error="no answer")) for name in hosts}


def refused(answer: Remote) -> bool:
    return not answer.ok and "controller token" in answer.error and "refused" in answer.error
