"""The controller's part of applying backup policies: secrets, the backup key, repo init.

Secrets are resolved here and handed to the SSH worker in its request (a pipe to a
child process); they are never printed, journaled or put in a plan.
"""

from __future__ import annotations

from pathlib import Path

from backups.restic_repo import ResticError
from reconciler.apply import BackupSecrets, Report, Work
from reconciler.backup_key import ensure_backup_key
from reconciler.observe_backups import open_repository
from reconciler.plan import Plan
from state.load import LoadedFleet
from state.secrets import SecretUnavailable, resolve_secret


def backup_secrets(
    loaded: LoadedFleet, work: Work, key_dir: Path
) -> tuple[BackupSecrets | None, dict[str, str]]:
    """Passwords of the policies in `work` and the fleet's backup key; failures by host."""
    names = {
        (host, item["name"])
        for host, items in work.items()
        for item in items
        if item["kind"] == "backup"
    }
    if not names:
        return None, {}
    passwords, failed = {}, {}
    for host, name in sorted(names):
        try:
            passwords[name] = resolve_secret(loaded.fleet.backups[name].password)
        except SecretUnavailable as exc:
            failed[host] = f"backup {name}: {exc}"
    key = ensure_backup_key(key_dir)
    return BackupSecrets(passwords, key.private, key.public), failed


def without_failed(work: Work, failed: dict[str, str]) -> Work:
    return {host: items for host, items in work.items() if host not in failed}


def init_repositories(loaded: LoadedFleet, plan: Plan, report: Report) -> dict[str, str]:
    """`restic init` each repository the plan says to initialise; failures by host."""
    failed, done = {}, set()
    for action in plan.actions:
        if action.kind != "repo_init" or action.service is None:
            continue
        name = action.service.removeprefix("backup:")
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
