"""Where managed things live on a host. Import-light on purpose: the SSH worker uses it."""

UNIT_DIR = "/etc/systemd/system"


def unit_file(unit_name: str) -> str:
    """`ollama` -> `ollama.service`; names that carry a type (`x.timer`) stay as they are."""
    return unit_name if unit_name.endswith((".service", ".timer")) else f"{unit_name}.service"


def unit_path(unit_name: str) -> str:
    """Where the unit file of `unit_name` (a service name, or `x.timer`) lives on a host."""
    return f"{UNIT_DIR}/{unit_file(unit_name)}"


ETC = "/etc/fleet-reconciler"
BACKUP_KEY = f"{ETC}/backup_ed25519"
BACKUP_STAGING = "/var/lib/fleet-reconciler/staging"
MANAGED_RECORD = "/var/lib/fleet-reconciler/managed.json"
"""What the reconciler created on a host (services, backup policies), so that what the
spec stops naming is removed from the record, never guessed."""


def backup_unit(policy: str) -> str:
    """Name of a policy's service and timer (without the suffix)."""
    return f"fleet-backup-{policy}"


def backup_env_path(policy: str) -> str:
    return f"{ETC}/backup-{policy}.env"


def backup_known_hosts_path(policy: str) -> str:
    """The repository host's pinned key, for a policy whose repository is on another host."""
    return f"{ETC}/backup-{policy}.known_hosts"


def backup_last_path(policy: str) -> str:
    """Where a policy's script leaves the ID and time of the snapshot it just made."""
    return f"/var/lib/fleet-reconciler/backup-{policy}.last"


def backup_running_path(policy: str) -> str:
    """Present while a policy's backup runs: left behind, the backup was cut short."""
    return f"/var/lib/fleet-reconciler/backup-{policy}.running"


def backup_script_path(policy: str) -> str:
    return f"/usr/local/lib/fleet-reconciler/backup-{policy}.sh"


def backup_service_id(policy: str) -> str:
    """How plans, events and the journal name a backup policy: `backup:POLICY`."""
    return f"backup:{policy}"


def backup_policy_of(service: str | None) -> str | None:
    """The policy name of a `backup:POLICY` service id, else None."""
    if service is None or not service.startswith("backup:"):
        return None
    return service.removeprefix("backup:")
