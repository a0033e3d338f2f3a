"""Backups on the hosts: per policy a root-only env file, a script, a service and a timer.

The timer runs the policy even while the reconciler is down (`Persistent=true` catches
up a missed run). The script takes consistent copies first (SQLite `VACUUM INTO` plus
`PRAGMA integrity_check`, `git bundle create --all` plus `git bundle verify`), never
the live files, then runs `restic backup --host --tag POLICY`. The repository password
lives only in the env file (mode 0600), never in the script, a unit or a plan.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.operations import apt, files, server, systemd

from deploys.service import any_changed, put_file, typed_deploy
from state.layout import (
    BACKUP_KEY,
    ETC,
    backup_path,
    backup_unit,
    run_backup_command,
    unit_path,
)
from state.placement import is_guarded
from state.render_backup import (
    authorized_entry,
    pins_repository_host,
    render_env,
    render_script,
    render_service,
    render_timer,
)
from state.repository import RepositoryTarget, resolve_repository
from state.spec.backups import BackupPolicy
from state.spec.fleet import Fleet


@typed_deploy("Backup policy")
def backup_policy(
    fleet: Fleet,
    name: str,
    password: str,
    private_key: str | None,
    repository_known_hosts: str | None = None,
) -> None:
    """restic installed; env file, script, service and timer; the timer enabled and running.

    Secrets go into /etc/fleet-reconciler, made 0700 first, so no other user can read
    them in the moment between an upload and its chmod. A repository on another fleet
    host gets that host's key pinned (`repository_known_hosts`, from the controller).
    """
    policy = fleet.backups[name]
    target = resolve_repository(fleet, policy)
    files.directory(
        name=f"backup {name}: private directory {ETC}",
        path=ETC,
        mode="700",
        user="root",
        group="root",
    )
    tools = ["restic", "openssh-client"]
    tools += ["sqlite3"] if policy.sqlite else []
    tools += ["git"] if policy.git else []
    # No `apt update` here: a no-op when the tools are present, an install when not.
    apt.packages(name=f"backup {name}: restic and the copy tools", packages=tools)
    _repository_access(name, policy, target, private_key, repository_known_hosts)
    put_file(
        f"backup {name}: env file (secret)",
        render_env(policy, target, password),
        backup_path(name, "env"),
        "600",
        "root",
        "root",
    )
    files.put(
        name=f"backup {name}: script",
        src=StringIO(render_script(name, policy, target)),
        dest=backup_path(name, "script"),
        mode="700",
        user="root",
        group="root",
    )
    _units(fleet, name)  # the env file and the script need no restart: the timer runs them


def _repository_access(
    name: str,
    policy: BackupPolicy,
    target: RepositoryTarget,
    private_key: str | None,
    repository_known_hosts: str | None,
) -> None:
    """The policy's own key to its repository host, and that host's key pinned."""
    if pins_repository_host(policy, target):
        files.put(
            name=f"backup {name}: repository host key (pinned)",
            src=StringIO(repository_known_hosts or ""),
            dest=backup_path(name, "known_hosts"),
            mode="644",
            user="root",
            group="root",
        )
    if private_key is not None and pins_repository_host(policy, target):
        key = backup_path(name, "key")
        put_file(f"backup {name}: its own ssh key", private_key, key, "600", "root", "root")
    files.file(  # the fleet-wide key of earlier versions opened every repository
        name=f"backup {name}: no fleet-wide backup key",
        path=BACKUP_KEY,
        present=False,
    )


def _units(fleet: Fleet, name: str) -> None:
    """The policy's service and timer, and the timer enabled and running."""
    policy = fleet.backups[name]
    service = files.put(
        name=f"backup {name}: service",
        src=StringIO(render_service(name, is_guarded(fleet, backup_unit(name)))),
        dest=f"/etc/systemd/system/{backup_unit(name)}.service",
        mode="644",
    )
    timer = files.put(
        name=f"backup {name}: timer",
        src=StringIO(render_timer(name, policy)),
        dest=f"/etc/systemd/system/{backup_unit(name)}.timer",
        mode="644",
    )
    systemd.daemon_reload(name=f"backup {name}: daemon-reload", _if=any_changed(service, timer))
    systemd.service(
        name=f"backup {name}: timer enabled",
        service=f"{backup_unit(name)}.timer",
        running=True,
        enabled=True,
    )


@typed_deploy("Backup now")
def backup_now(name: str) -> None:
    """Run the policy's backup unit and wait for it (a oneshot `systemctl start` blocks)."""
    server.shell(name=f"backup {name}: run now", commands=[run_backup_command(name)])


def repository_entries(fleet: Fleet, host: str, public_keys: dict[str, str]) -> list[str]:
    """The `authorized_keys` lines of `host` as a repository host: one per policy whose
    repository it holds for another host, confined to that repository, append-only."""
    entries = []
    for name, policy in sorted(fleet.backups.items()):
        target = resolve_repository(fleet, policy)
        if target.sftp_host != host or not pins_repository_host(policy, target):
            continue
        if name in public_keys and target.path is not None:
            entries.append(authorized_entry(name, target.path, public_keys[name]))
    return entries


@typed_deploy("Backup repository host")
def repository_host(entries: list[str], legacy_public: str | None) -> None:
    """Let each policy's own key reach its repository on this host, and nothing else:
    rclone serves it append-only as the key's forced command. The block is rewritten
    whole, so a policy that left the spec loses its entry; the unrestricted fleet-wide
    key of earlier versions is removed."""
    apt.packages(name="backup key authorized: rclone serves the repositories", packages=["rclone"])
    files.directory(
        name="backup key authorized: /root/.ssh", path="/root/.ssh", mode="700", present=True
    )
    files.block(
        name="backup key authorized: one confined entry per policy",
        path="/root/.ssh/authorized_keys",
        content=entries,
        present=True,
        marker="# {mark} fleet-reconciler backup keys, each confined to one repository",  # no regex
    )
    if legacy_public is not None:
        files.line(
            name="backup key authorized: the fleet-wide key revoked",
            path="/root/.ssh/authorized_keys",
            line=legacy_public.strip(),
            present=False,
            escape_regex_characters=True,
        )


@typed_deploy("Remove backup policy")
def remove_backup_policy(name: str) -> None:
    """Remove what a policy the spec no longer names left on its host: the timer stopped
    and disabled, units, script, env file (the password) and pinned key. Snapshots in
    the repository are kept."""
    q = shlex.quote
    timer = f"{backup_unit(name)}.timer"
    server.shell(
        name=f"backup {name}: stop and disable its timer",
        commands=[f"if [ -e {q(unit_path(timer))} ]; then systemctl disable --now {q(timer)}; fi"],
    )
    paths = [
        unit_path(timer),
        unit_path(f"{backup_unit(name)}.service"),
        backup_path(name, "script"),
        backup_path(name, "env"),
        backup_path(name, "known_hosts"),
        backup_path(name, "last"),
        backup_path(name, "running"),
    ]
    removed = [files.file(name=f"backup {name}: remove {p}", path=p, present=False) for p in paths]
    systemd.daemon_reload(name=f"backup {name}: daemon-reload", _if=any_changed(*removed))
