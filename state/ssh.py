"""How the controller reaches a spec Host: pyinfra inventory data and the plain ssh command.

One definition for the reconciler's SSH worker, `deploys/inventory.py` and the restic
adapter, so every path connects the same way, and every path checks the host's key:
against `ssh_known_hosts` (or the controller user's ~/.ssh/known_hosts), strictly
unless the spec says `host_key_policy: trust-on-first-use`.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from state.spec.hosts import Host

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"

# OpenSSH 9's default key exchange, sntrup761x25519, costs about 0.15 s of CPU per
# connection on a small 2-core machine (curve25519 alone: 0.01 s), and restic opens one
# connection per command. The controller's pyinfra connections (paramiko) already use
# curve25519, so every path negotiates the same exchange; newer clients keep ML-KEM.
# A removal pattern ("-"), so a client that lacks the name still connects; no comma,
# since restic splits its `--option` values on commas.
KEX_ALGORITHMS = "KexAlgorithms=-sntrup*"


def known_hosts_file(host: Host) -> str:
    """The known_hosts file that `host`'s key is checked against (expanded)."""
    return os.path.expanduser(host.ssh_known_hosts or DEFAULT_KNOWN_HOSTS)


def strict_host_key_checking(host: Host) -> str:
    """OpenSSH's StrictHostKeyChecking value for `host`'s policy."""
    return "accept-new" if host.host_key_policy == "trust-on-first-use" else "yes"


def pyinfra_host_data(host: Host) -> dict[str, Any]:
    """pyinfra `ssh_*` host data for `host`, with its host key always checked."""
    data: dict[str, Any] = {
        "ssh_hostname": host.address,
        "ssh_user": host.ssh_user,
        "ssh_port": host.ssh_port,
        "ssh_known_hosts_file": known_hosts_file(host),
        "ssh_strict_host_key_checking": strict_host_key_checking(host),
    }
    if host.ssh_key:
        data["ssh_key"] = host.ssh_key
    return data


def ssh_options(host: Host) -> list[str]:
    """OpenSSH client options reaching `host` with its own key and known_hosts."""
    options = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", KEX_ALGORITHMS]
    options += ["-p", str(host.ssh_port)]
    if host.ssh_key:
        options += ["-i", host.ssh_key]
    return [
        *options,
        "-o",
        f"UserKnownHostsFile={known_hosts_file(host)}",
        "-o",
        f"StrictHostKeyChecking={strict_host_key_checking(host)}",
    ]


def ssh_argv(host: Host, *remote: str) -> list[str]:
    """`ssh OPTIONS -- USER@ADDRESS [REMOTE...]`: `--` ends the options, so nothing
    from the spec can be read as one (the spec's types refuse a leading `-` too)."""
    return ["ssh", *ssh_options(host), "--", f"{host.ssh_user}@{host.address}", *remote]


def sftp_argv(host: Host) -> list[str]:
    """The ssh command that starts the sftp subsystem on `host` (for restic)."""
    return ["ssh", *ssh_options(host), "-s", "--", f"{host.ssh_user}@{host.address}", "sftp"]


def known_host_lines(host: Host) -> str | None:
    """The controller's known_hosts lines for `host` (to pin it elsewhere), or None.

    Read with `ssh-keygen -F`, which understands hashed entries and `[address]:port`."""
    pattern = host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"
    done = subprocess.run(
        ["ssh-keygen", "-F", pattern, "-f", known_hosts_file(host)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    return "".join(f"{line}\n" for line in lines) if done.returncode == 0 and lines else None
