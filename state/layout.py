"""Where managed things live on a host. Import-light on purpose: the SSH worker uses it."""

UNIT_DIR = "/etc/systemd/system"


def unit_path(unit_name: str) -> str:
    """Where the unit file of service `unit_name` lives on a host."""
    return f"{UNIT_DIR}/{unit_name}.service"
