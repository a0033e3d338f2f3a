"""`reconcile enroll HOST [STATE]`: a new VPS joins without trust on first use.

The controller generates the host's SSH host key itself. The cloud-init user-data it
writes gives the host that key (and deletes the image's own), and root the controller's
public key; the key's public half goes into the host's `ssh_known_hosts` file at once.
The first connection is then checked strictly, against a key nobody had to trust: the
runbook's "new VPS after a total loss", with the spec's new `address`.

The user-data holds the host's private key: it is written 0600 (`--user-data FILE`) or
to stdout, and should reach the provider only as the instance's user-data."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from reconciler.cli import exit_codes
from reconciler.cli.terminal import report
from reconciler.errors import Refused, UsageError
from state.load import load_fleet
from state.spec.hosts import Host
from state.ssh import known_hosts_file


def cmd_enroll(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.state).fleet
    host = fleet.hosts.get(args.host)
    if host is None:
        raise UsageError(f"no host {args.host!r} in {args.state}; hosts: {', '.join(fleet.hosts)}")
    if host.ssh_key is None:
        raise Refused(f"host {args.host}: ssh_key is not set: the controller has no key to give")
    private, public = host_key(args.host)
    user_data = cloud_config(args.host, controller_key(host.ssh_key), private, public)
    known = Path(known_hosts_file(host))
    added = remember(known, known_host_name(host), public, args.replace)
    if args.user_data:
        target = Path(args.user_data)
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        target.write_text(user_data)
        report(f"{args.host}: user-data written to {target} (0600: it holds the host's key)")
    else:
        print(user_data, end="")
    said = "added to" if added else "already in"
    report(f"{args.host}: host key {public.split()[1][:16]}... {said} {known}; first contact "
           "is checked strictly against it")  # fmt: skip
    return exit_codes.OK


def host_key(name: str) -> tuple[str, str]:
    """A new ed25519 host key: (private key file text, public key line)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "key"
        comment = f"{name} (enrolled)"
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
        return path.read_text(), (Path(scratch) / "key.pub").read_text().strip()


def controller_key(private: str) -> str:
    """The public half of the controller's key for the host (`ssh_key`)."""
    done = subprocess.run(
        ["ssh-keygen", "-y", "-f", private], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise Refused(f"cannot read the public half of {private}: {done.stderr.strip()}")
    return done.stdout.strip()


def known_host_name(host: Host) -> str:
    return host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"


def remember(known: Path, name: str, public: str, replace: bool) -> bool:
    """Put `name`'s new key in `known`; a different key already there is refused unless
    `replace` (a rebuilt host at the same address). Whether a line was added."""
    kind, key = public.split()[:2]
    lines = known.read_text().splitlines() if known.exists() else []
    mine = [line for line in lines if line.split()[:1] == [name]]
    if any(line.split()[1:3] == [kind, key] for line in mine):
        return False
    if mine and not replace:
        raise Refused(
            f"{known} already holds a key for {name}: enrolling a new host there replaces "
            "it; pass --replace if that is what you mean"
        )
    kept = [line for line in lines if line.split()[:1] != [name]]
    known.parent.mkdir(parents=True, exist_ok=True)
    known.write_text("".join(f"{line}\n" for line in [*kept, f"{name} {kind} {key}"]))
    return True


def cloud_config(name: str, controller: str, private: str, public: str) -> str:
    """cloud-init user-data: root's authorized key and the host key, nothing else."""
    indented = "".join(f"    {line}\n" for line in private.splitlines())
    return (
        "#cloud-config\n"
        f"# {name}: enrolled by `reconcile enroll`. Holds the host's private SSH key.\n"
        "disable_root: false\n"
        "ssh_pwauth: false\n"
        "users:\n"
        "  - name: root\n"
        f"    ssh_authorized_keys: [{controller!r}]\n"
        "ssh_deletekeys: true\n"
        "ssh_genkeytypes: []\n"
        "ssh_keys:\n"
        "  ed25519_private: |\n"
        f"{indented}"
        f"  ed25519_public: {public}\n"
    )
