"""The pyinfra-CLI peer for bench/dry_run.py: the same desired state, as plain pyinfra ops.

Run by the benchmark as `pyinfra --dry -y INVENTORY bench/pyinfra_deploy.py`; each host's
data (`service`, `agent_source`, `unit`, `config`) comes from the inventory.
"""

from io import StringIO

from pyinfra import host  # type: ignore[attr-defined]
from pyinfra.operations import files, systemd

files.put(
    name="agent binary",
    src=host.data.agent_source,
    dest=f"/usr/local/bin/{host.data.service}",
    mode="755",
)
files.put(
    name="agent config",
    src=StringIO(host.data.config),
    dest=f"/etc/agent/{host.data.service}.conf",
    mode="640",
)
files.put(
    name="agent unit",
    src=StringIO(host.data.unit),
    dest=f"/etc/systemd/system/{host.data.service}.service",
    mode="644",
)
systemd.service(
    name="agent running and enabled",
    service=f"{host.data.service}.service",
    running=True,
    enabled=True,
)
