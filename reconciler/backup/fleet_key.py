"""The fleet's backup SSH key: lets a host write its backups to a repository on another
fleet host over sftp. Generated once on the controller, next to the journal."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.ssh.protocol import BackupKeyPair


def ensure_fleet_backup_key(directory: Path) -> BackupKeyPair:
    """Load the key pair from `directory`, generating it (ed25519, no passphrase) if absent."""
    path = directory / "backup_ed25519"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "fleet-reconciler-backup",
                "-f",
                str(path),
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        )
    return BackupKeyPair(private=path.read_text(), public=Path(f"{path}.pub").read_text())
