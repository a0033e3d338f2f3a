"""Render the files a spec implies: systemd unit files and config file contents.

Pure functions of the spec (templates come from the `LoadedFleet`, read when the
state file was loaded). Both the diff (what should be there) and the deploys (what to write) use
these, so the two can never disagree.
"""

from __future__ import annotations

from string import Template

from state.fence import GUARD_CHECK
from state.load import LoadedFleet
from state.spec.services import ConfigFile, Service, Unit

HEADER = "# Managed by fleet-reconciler from the desired state; local edits are reverted.\n"


def unit_text(value: str) -> str:
    """A free-text value for a unit setting: systemd's `%` specifiers kept literal.

    The spec's types already refuse newlines and control characters, which would start
    a new directive; this is the second half of writing a value as the user meant it."""
    return value.replace("%", "%%")


def environment_line(key: str, value: str) -> str:
    """`Environment="KEY=value"` with systemd's quoting: backslash, quote and `%` escaped."""
    quoted = unit_text(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'Environment="{key}={quoted}"'


def render_unit(unit: Unit, guarded: bool = False) -> str:
    """The unit file for `unit`, byte for byte as it should be on the host. A `guarded`
    unit (a failover service) starts only while its host holds the lease (state.fence)."""
    service = [f"ExecStartPre=+{GUARD_CHECK}"] if guarded else []
    service += [f"ExecStart={unit.exec_start}", f"User={unit.user}"]
    if unit.working_directory:
        service.append(f"WorkingDirectory={unit.working_directory}")
    service += [environment_line(key, value) for key, value in sorted(unit.environment.items())]
    service += [f"Restart={unit.restart}", f"RestartSec={int(unit.restart_sec.total_seconds())}"]
    return (
        HEADER
        + "[Unit]\n"
        + f"Description={unit_text(unit.description)}\n"
        + "After=network-online.target\n"
        + "\n[Service]\n"
        + "".join(f"{line}\n" for line in service)
        + "\n[Install]\n"
        + "WantedBy=multi-user.target\n"
    )


def render_config(loaded: LoadedFleet, service_name: str, config: ConfigFile) -> str:
    """The content `config` should have on the host of `service_name`."""
    if config.content is not None:
        return config.content
    assert config.template is not None  # the model guarantees one of the two
    service: Service = loaded.fleet.services[service_name]
    host = loaded.fleet.hosts[service.host]
    template = Template(loaded.templates[config.template])
    return template.safe_substitute(host=service.host, address=host.address, service=service_name)
