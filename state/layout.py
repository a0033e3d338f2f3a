"""Where managed things live on a host. Import-light on purpose: the SSH worker uses it."""

import shlex
from typing import Literal

UNIT_DIR = "/etc/systemd/system"


def unit_file(unit_name: str) -> str:
    """`ollama` -> `ollama.service`; names that carry a type (`x.timer`) stay as they are."""
    return unit_name if unit_name.endswith((".service", ".timer")) else f"{unit_name}.service"


def unit_path(unit_name: str) -> str:
    """Where the unit file of `unit_name` (a service name, or `x.timer`) lives on a host."""
    return f"{UNIT_DIR}/{unit_file(unit_name)}"


ETC = "/etc/fleet-reconciler"
BACKUP_KEY = f"{ETC}/backup_ed25519"  # the fleet-wide key of earlier versions: removed
BACKUP_STAGING = "/var/lib/fleet-reconciler/staging"
MANAGED_RECORD = "/var/lib/fleet-reconciler/managed.json"
"""What the reconciler created on a host (services, backup policies), so that what the
spec stops naming is removed from the record, never guessed."""


def backup_unit(policy: str) -> str:
    """Name of a policy's service and timer (without the suffix)."""
    return f"fleet-backup-{policy}"


def run_backup_command(policy: str) -> str:
    """Shell: run the policy's backup unit and wait (a oneshot `systemctl start` blocks);
    on failure, print the unit's own last lines (restic's error, or systemd's reason the
    start was refused) to stderr instead of systemd's "see systemctl status" summary."""
    unit = shlex.quote(f"{backup_unit(policy)}.service")
    # The run's own lines and systemd's about it (a start refused before the script ran).
    last_lines = (
        f"run=$(systemctl show -p InvocationID --value {unit}); "
        'journalctl --no-pager -o cat -n 4 _SYSTEMD_INVOCATION_ID="$run" + INVOCATION_ID="$run"'
    )
    return f"systemctl start -- {unit} || {{ {last_lines} >&2; exit 1; }}"


BackupFile = Literal["env", "key", "known_hosts", "last", "running", "script"]
_BACKUP_FILES: dict[BackupFile, str] = {
    "env": f"{ETC}/backup-{{}}.env",  # the repository and its password (0600)
    "key": f"{ETC}/backup-{{}}.key",  # the policy's own SSH key to its repository host (0600)
    "known_hosts": f"{ETC}/backup-{{}}.known_hosts",  # the repository host's pinned key
    "last": "/var/lib/fleet-reconciler/backup-{}.last",  # the ID and time of the newest snapshot
    "running": "/var/lib/fleet-reconciler/backup-{}.running",  # left behind: a backup cut short
    "script": "/usr/local/lib/fleet-reconciler/backup-{}.sh",
}


def backup_path(policy: str, kind: BackupFile) -> str:
    """Where one of a policy's files lives on its host."""
    return _BACKUP_FILES[kind].format(policy)


def backup_service_id(policy: str) -> str:
    """How plans, events and the journal name a backup policy: `backup:POLICY`."""
    return f"backup:{policy}"


def copy_service_id(policy: str, copy: str) -> str:
    """How events and the journal name a policy's copy: `copy:POLICY:COPY`."""
    return f"copy:{policy}:{copy}"


def backup_policy_of(service: str | None) -> str | None:
    """The policy name of a `backup:POLICY` service id, else None."""
    if service is None or not service.startswith("backup:"):
        return None
    return service.removeprefix("backup:")
