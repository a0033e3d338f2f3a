"""Render a backup policy's host-side files: env file, script, service and timer. Pure.

The script takes consistent copies first (SQLite `VACUUM INTO` plus `PRAGMA
integrity_check`, `git bundle create --all` plus `git bundle verify`), never the live
files, then runs `restic backup --host HOST --tag POLICY`. Only the env file holds the
repository password; nothing else rendered here does.
"""

from __future__ import annotations

import shlex

from state.fence import EPOCH_FILE, GUARD_CHECK
from state.layout import (
    BACKUP_STAGING,
    backup_path,
)
from state.render import HEADER
from state.repository import RepositoryTarget
from state.spec.backups import BackupPolicy
from state.ssh import KEX_ALGORITHMS

CONFINED_URL = "rclone:confined"  # the forced command decides what is served, not this


def render_env(policy: BackupPolicy, target: RepositoryTarget, password: str) -> str:
    """The env file's content. It holds the password: never print it."""
    url = CONFINED_URL if pins_repository_host(policy, target) else target.url
    return (
        f"RESTIC_REPOSITORY={url}\nRESTIC_PASSWORD={password}\n"
        "RESTIC_CACHE_DIR=/var/cache/fleet-reconciler/restic\n"
    )


def serve_command(path: str) -> str:
    """What the repository host runs for a policy's key, whatever the client asks: its
    one repository, served over stdio, append-only (rclone refuses every deletion but
    restic's own locks). No shell, no other path, no forgetting or pruning."""
    return f"rclone serve restic --stdio --config=/dev/null --append-only {path}"


def authorized_entry(name: str, path: str, public_key: str) -> str:
    """The repository host's `authorized_keys` line for policy `name`'s key: `restrict`
    (no pty, no forwarding of any kind, no ~/.ssh/rc) and the forced command."""
    key = " ".join(public_key.split()[:2])  # type and key, our own comment
    return f'restrict,command="{serve_command(path)}" {key} fleet-reconciler-backup-{name}'


def _flat(path: str) -> str:
    return path.strip("/").replace("/", "_")


def sqlite_copy(name: str, db: str) -> str:
    """Where the snapshot holds the consistent copy of SQLite database `db`."""
    return f"{BACKUP_STAGING}/{name}/sqlite/{_flat(db)}"


def git_bundle(name: str, repo: str) -> str:
    """Where the snapshot holds the bundle of git repository `repo`."""
    return f"{BACKUP_STAGING}/{name}/git/{_flat(repo)}.bundle"


def pins_repository_host(policy: BackupPolicy, target: RepositoryTarget) -> bool:
    """Whether the policy's host reaches its repository on another fleet host (and so
    needs that host's key pinned, and its own confined key there)."""
    return target.on_fleet and target.sftp_host != policy.host


def _transport_option(name: str, policy: BackupPolicy, target: RepositoryTarget) -> str:
    """` --option rclone.program=...` for a repository on another fleet host, else ``.

    The host reaches it with the policy's own key, which the repository host accepts
    only for `serve_command` (append-only, that one path): restic speaks its REST
    protocol over the ssh session's stdio. restic splits the program on spaces, so every
    part is a checked value without spaces; `--` ends ssh's options before the
    destination. The repository host's key is pinned: only the key in the policy's
    known_hosts file (taken from the controller's) is accepted.
    """
    if not pins_repository_host(policy, target):
        return ""
    destination = f"{target.sftp_user}@{target.url.split('@', 1)[1].rsplit(':', 1)[0]}"
    ssh = (
        f"ssh -i {backup_path(name, 'key')} -o BatchMode=yes -o {KEX_ALGORITHMS} "
        "-o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={backup_path(name, 'known_hosts')} -- {destination}"
    )
    return " --option " + shlex.quote(f"rclone.program={ssh}")


# restic's --json summary line names the snapshot; sed takes its ID (no jq on hosts).
SNAPSHOT_ID = (
    'id="$(sed -n \'s/.*"snapshot_id":"\\([0-9a-f]*\\)".*/\\1/p\' "$summary" | tail -n 1)"'
)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_script(name: str, policy: BackupPolicy, target: RepositoryTarget) -> str:
    """The policy's backup script. Every value from the spec is shell-quoted where it is
    used (and the spec's path type already refuses `$`, quotes and backticks)."""
    unlock = "restic unlock" + _transport_option(name, policy, target)
    lines = _script_start(name, unlock)
    lines += _consistent_copies(name, policy)
    lines += [
        "# The host's epoch (state.fence) tags the snapshot: a restore never picks a copy",
        "# from a stale epoch.",
        f'epoch="$(cat {shlex.quote(EPOCH_FILE)} 2>/dev/null || echo 0)"',
        'case "$epoch" in ""|*[!0-9]*) epoch=0;; esac',
    ]
    selection, command = _restic_backup(name, policy, target)
    return "\n".join([*lines, *selection, *_script_end(name, command, unlock)]) + "\n"


def _script_start(name: str, unlock: str) -> list[str]:
    q = shlex.quote
    return [
        "#!/bin/sh",
        HEADER.rstrip(),
        f"# Backup policy {name}.",
        "set -eu",
        f"stage={q(f'{BACKUP_STAGING}/{name}')}",
        'rm -rf "$stage"',
        'mkdir -p "$stage"',
        'errors="$(mktemp)"',
        'summary="$(mktemp)"',
        'trap \'rm -rf "$stage" "$errors" "$summary"\' EXIT',
        "# A backup cut short (killed, a crash) leaves its lock, which blocks retention:",
        "# clear it the next time, by restic's own rule (a dead process on this host, or",
        "# older than 30 minutes); a live lock stays. Backups that finished pay nothing.",
        f"running={q(backup_path(name, 'running'))}",
        'if [ -e "$running" ]; then',
        "    " + unlock,
        "fi",
        'touch "$running"',
    ]


def _consistent_copies(name: str, policy: BackupPolicy) -> list[str]:
    """SQLite copies and git bundles staged, and every path checked to be there."""
    q, lines = shlex.quote, []
    for db in policy.sqlite:
        copy = sqlite_copy(name, db)
        lines += [
            "# SQLite: a consistent copy (VACUUM INTO), checked; never the live file.",
            f"test -f {q(db)} || {{ echo {q(f'database {db} is missing')} >&2; exit 1; }}",
            'mkdir -p "$stage/sqlite"',
            f"sqlite3 {q(db)} {q(f'VACUUM INTO {_sql_text(copy)}')}",
            f"test \"$(sqlite3 {q(copy)} 'PRAGMA integrity_check')\" = ok",
        ]
    for path in [*policy.git, *policy.paths]:
        missing = f"{path} is missing: no backup over missing data"
        lines.append(f"test -e {q(path)} || {{ echo {q(missing)} >&2; exit 1; }}")
    for repo in policy.git:
        bundle = q(git_bundle(name, repo))
        lines += [
            "# Git: every ref in one bundle, verified.",
            'mkdir -p "$stage/git"',
            f"git -C {q(repo)} bundle create {bundle} --all",
            f"git -C {q(repo)} bundle verify {bundle} >/dev/null",
        ]
    return lines


def _restic_backup(
    name: str, policy: BackupPolicy, target: RepositoryTarget
) -> tuple[list[str], str]:
    """The lines that select the files (max_file_age), and the `restic backup` command."""
    q, lines = shlex.quote, []
    backup = ["restic", "backup", "--json", "--host", q(policy.host), "--tag", q(name)]
    backup += ["--tag", '"epoch-$epoch"']
    if option := _transport_option(name, policy, target).strip():
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
        backup += ["--", *(q(p) for p in policy.paths)]
    backup.append('"$stage"')
    return lines, " ".join(backup)


def _script_end(name: str, command: str, unlock: str) -> list[str]:
    return [
        "# A stale lock this host left before it kept this record is cleared the same way.",
        f'if {command} >"$summary" 2>"$errors"; then',
        '    cat "$errors" >&2',
        "else",
        '    cat "$errors" >&2',
        '    grep -q "already locked" "$errors" || exit 1',
        f"    {unlock}",
        f'    {command} >"$summary"',
        "fi",
        "# The new snapshot's ID and time, for the controller: it lists the repository only",
        "# for an ID the repository has not confirmed to it yet.",
        SNAPSHOT_ID,
        'test -n "$id"',
        f'echo "$id $(date +%s)" > {shlex.quote(backup_path(name, "last"))}',
        'rm -f "$running"',
    ]


def render_service(name: str, guarded: bool = False) -> str:
    """The policy's oneshot service; a `guarded` one (failover data) runs only on the host
    that holds the lease, so a fenced primary takes no stale-epoch snapshots."""
    guard = f"ExecStartPre=+{GUARD_CHECK}\n" if guarded else ""
    return (
        HEADER + "[Unit]\n"
        f"Description=fleet-reconciler backup: {name}\n"
        "After=network-online.target\n\n[Service]\nType=oneshot\n"
        + guard
        + f"EnvironmentFile={backup_path(name, 'env')}\nExecStart={backup_path(name, 'script')}\n"
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
