"""Render a backup policy's host-side files: env file, script, service and timer. Pure.

The script takes consistent copies first (SQLite `VACUUM INTO` plus `PRAGMA
integrity_check`, `git bundle create --all` plus `git bundle verify`), never the live
files, then runs `restic backup --host HOST --tag POLICY`. Only the env file holds the
repository password; nothing else rendered here does.
"""

from __future__ import annotations

import shlex

from state.layout import (
    BACKUP_KEY,
    BACKUP_KNOWN_HOSTS,
    BACKUP_STAGING,
    backup_env_path,
    backup_script_path,
)
from state.models import BackupPolicy
from state.render import HEADER
from state.repository import RepositoryTarget


def render_env(target: RepositoryTarget, password: str) -> str:
    """The env file's content. It holds the password: never print it."""
    return (
        f"RESTIC_REPOSITORY={target.url}\nRESTIC_PASSWORD={password}\n"
        "RESTIC_CACHE_DIR=/var/cache/fleet-reconciler/restic\n"
    )


def _flat(path: str) -> str:
    return path.strip("/").replace("/", "_")


def _sftp_option(name: str, policy: BackupPolicy, target: RepositoryTarget) -> str:
    """` --option sftp.command=...` for a repository on another fleet host, else ``."""
    if not target.on_fleet or target.sftp_host == policy.host:
        return ""
    ssh = (
        f"ssh -i {BACKUP_KEY} -o BatchMode=yes -o StrictHostKeyChecking=accept-new "
        f"-o UserKnownHostsFile={BACKUP_KNOWN_HOSTS} {target.url.split(':')[1]} -s sftp"
    )
    return " --option " + shlex.quote(f"sftp.command={ssh}")


def render_script(name: str, policy: BackupPolicy, target: RepositoryTarget) -> str:
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        HEADER.rstrip(),
        f"# Backup policy {name}.",
        "set -eu",
        f"stage={q(BACKUP_STAGING + '/' + name)}",
        'rm -rf "$stage"',
        'mkdir -p "$stage"',
        "trap 'rm -rf \"$stage\"' EXIT",
        "# Clear stale locks only (restic's rule: older than 30 minutes, or a dead process",
        "# on this host, which is what a killed backup leaves); a live lock still blocks.",
        "restic unlock" + _sftp_option(name, policy, target),
    ]
    for db in policy.sqlite:
        copy = f"$stage/sqlite/{_flat(db)}"
        lines += [
            "# SQLite: a consistent copy (VACUUM INTO), checked; never the live file.",
            f'test -f {q(db)} || {{ echo "database {db} is missing" >&2; exit 1; }}',
            'mkdir -p "$stage/sqlite"',
            f"sqlite3 {q(db)} \"VACUUM INTO '{copy}'\"",
            f'test "$(sqlite3 "{copy}" "PRAGMA integrity_check")" = ok',
        ]
    for repo in policy.git:
        bundle = f"$stage/git/{_flat(repo)}.bundle"
        lines += [
            "# Git: every ref in one bundle, verified.",
            'mkdir -p "$stage/git"',
            f'git -C {q(repo)} bundle create "{bundle}" --all',
            f'git -C {q(repo)} bundle verify "{bundle}" >/dev/null',
        ]
    backup = ["restic", "backup", "--host", q(policy.host), "--tag", q(name)]
    if option := _sftp_option(name, policy, target).strip():
        backup.append(option)
    backup += [f"--exclude {q(pattern)}" for pattern in policy.excludes]
    if policy.max_file_age is not None and policy.paths:
        minutes = int(policy.max_file_age.total_seconds() // 60)
        lines.append(f"# Only files changed within {minutes} minutes.")
        lines.append(
            "find "
            + " ".join(q(p) for p in policy.paths)
            + f' -type f -mmin -{minutes} > "$stage/files.txt"'
        )
        backup += ['--files-from "$stage/files.txt"']
    else:
        backup += [q(p) for p in policy.paths]
    backup.append('"$stage"')
    lines.append(" ".join(backup))
    return "\n".join(lines) + "\n"


def render_service(name: str) -> str:
    return (
        HEADER + "[Unit]\n"
        f"Description=fleet-reconciler backup: {name}\n"
        "After=network-online.target\n\n[Service]\nType=oneshot\n"
        f"EnvironmentFile={backup_env_path(name)}\nExecStart={backup_script_path(name)}\n"
        "Nice=10\nIOSchedulingClass=idle\n"
    )


def render_timer(name: str, policy: BackupPolicy) -> str:
    delay = int(policy.randomized_delay.total_seconds())
    return (
        HEADER + "[Unit]\n"
        f"Description=fleet-reconciler backup timer: {name}\n\n"
        f"[Timer]\nOnCalendar={policy.schedule}\nPersistent=true\n"
        f"RandomizedDelaySec={delay}\n\n[Install]\nWantedBy=timers.target\n"
    )
