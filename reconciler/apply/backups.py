"""The controller's part of applying backup policies: initialising repositories."""

from __future__ import annotations

from backups.repository import open_repository
from backups.restic_repo import ResticError
from reconciler.apply.context import Report
from reconciler.engine.plan import Plan
from reconciler.hosts.protocol import Work
from state.layout import backup_policy_of
from state.load import LoadedFleet
from state.secrets import SecretUnavailable


def without_failed(work: Work, failed: dict[str, str]) -> Work:
    return {host: items for host, items in work.items() if host not in failed}


def init_repositories(loaded: LoadedFleet, plan: Plan, report: Report) -> dict[str, str]:
    """`restic init` each repository the plan says to initialise; failures by host."""
    failed, done = {}, set()
    for action in plan.actions:
        name = backup_policy_of(action.service)
        if action.kind != "repo_init" or name is None:
            continue
        try:
            repository = open_repository(loaded.fleet, name)
            if repository.url in done:  # several policies may share one repository
                continue
            repository.init()
            done.add(repository.url)
            report(f"{action.host}: initialised {action.subject}")
        except (SecretUnavailable, ResticError) as exc:
            failed[action.host] = f"backup {name}: cannot initialise the repository: {exc}"
    return failed
