"""Real commit signers for tests: an SSH key (ssh-keygen) and an OpenPGP key (gpg), each
in its own directory, and the git config that signs a commit with it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Signer:
    public: str
    """The public key as `source.verify.keys` takes it."""
    config: tuple[str, ...]
    """`git -c` settings that sign with it."""
    env: dict[str, str]


def ssh_signer(directory: Path, name: str) -> Signer:
    key = directory / f"{name}_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    config = ("gpg.format=ssh", f"user.signingkey={key}.pub", "commit.gpgsign=true")
    return Signer(Path(f"{key}.pub").read_text().strip(), config, {})


def gpg_signer(directory: Path, name: str) -> Signer:
    home = directory / f"{name}-gnupg"
    home.mkdir(mode=0o700)
    email = f"{name}@example.invalid"
    gpg = ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback"]
    subprocess.run(
        [
            *gpg,
            "--passphrase",
            "",
            "--quick-gen-key",
            f"{name} <{email}>",
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        [*gpg, "--armor", "--export", email], check=True, capture_output=True, text=True
    ).stdout
    config = ("gpg.format=openpgp", f"user.signingkey={email}", "commit.gpgsign=true")
    return Signer(public, config, {"GNUPGHOME": str(home)})


def stop_agents(signer: Signer) -> None:
    """A GPG signer's agent, which gpg started for its secret key."""
    if "GNUPGHOME" in signer.env:
        subprocess.run(
            ["gpgconf", "--homedir", signer.env["GNUPGHOME"], "--kill", "gpg-agent"],
            check=False,
            capture_output=True,
        )
