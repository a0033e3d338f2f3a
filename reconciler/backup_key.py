"""The fleet's backup SSH key: lets a host write its backups to a repository on another
fleet host over sftp. Generated once on the controller, next to the journal."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BackupKey:
    private: str
    public: str


def ensure_backup_key(directory: Path) -> BackupKey:
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
    return BackupKey(path.read_text(), Path(f"{path}.pub").read_text())
