"""Each backup policy's own SSH key to its repository host, generated once on the
controller next to the journal. The repository host accepts it only for that policy's
repository, append-only (state.render_backup.authorized_entry); the key of one policy
opens nothing else, so a compromised host holds no power over another's backups."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.hosts.protocol import BackupKeyPair

LEGACY_KEY = "backup_ed25519"  # the one fleet-wide key of earlier versions


def ensure_policy_key(directory: Path, policy: str) -> BackupKeyPair:
    """Load policy `policy`'s key pair from `directory`, generating it (ed25519, no
    passphrase) if absent."""
    path = directory / f"backup-{policy}_ed25519"
    if not path.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        comment = f"fleet-reconciler-backup-{policy}"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
    return BackupKeyPair(private=path.read_text(), public=Path(f"{path}.pub").read_text())


def retire_policy_key(directory: Path, policy: str) -> str | None:
    """Delete policy `policy`'s key pair (the next `ensure_policy_key` makes a new one);
    its public line is kept as `...pub.retired` for the record. The old public line, or
    None when there was no key."""
    path = directory / f"backup-{policy}_ed25519"
    public = Path(f"{path}.pub")
    if not path.exists():
        return None
    old = public.read_text().strip() if public.exists() else None
    if old is not None:
        Path(f"{public}.retired").write_text(old + "\n")
    path.unlink()
    public.unlink(missing_ok=True)
    return old


def fingerprint(public: str) -> str:
    """`SHA256:...` of an OpenSSH public key line."""
    done = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"], input=public, capture_output=True, text=True, check=True
    )
    return done.stdout.split()[1]


def legacy_public_key(directory: Path) -> str | None:
    """The fleet-wide key an earlier version authorized on repository hosts, unrestricted,
    if this controller ever made one: its line is removed wherever it is found."""
    path = directory / f"{LEGACY_KEY}.pub"
    return path.read_text().strip() if path.exists() else None
