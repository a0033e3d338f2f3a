"""The leader's fencing token, claimed on each host before an apply changes it: a host
refuses a token lower than the highest it has seen (state.fence), so a controller that
was paused past its lease and still believes it leads cannot write after waking up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reconciler.hosts.remote import Remote, run_remote
from state.fence import controller_token_command
from state.spec.hosts import Host

CLAIM_TIMEOUT_S = 10.0


def claim_token(hosts: dict[str, Host], token: int, controller: str) -> dict[str, Remote]:
    """Claim `token` on every host at once; each host's answer, by name."""
    command = controller_token_command(token, controller)
    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        answers = pool.map(lambda h: run_remote(h, command, CLAIM_TIMEOUT_S), hosts.values())
        return dict(zip(hosts, answers, strict=True))


def refused(answer: Remote) -> bool:
    return not answer.ok and "controller token" in answer.error and "refused" in answer.error
