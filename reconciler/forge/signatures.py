"""Signed commits: which fetched commits `source.verify` lets the controller apply.

The keys come from the controller's own state file (a commit may not change `source`),
and git checks each signature against them alone: SSH signatures through an
allowed-signers file written from the SSH keys, OpenPGP ones through a keyring that
holds only the PGP keys, each trusted by us. Only git's `G` (a good signature from one
of these keys) passes. With `mode: all` every commit since the one in force is checked,
so an unsigned commit cannot hide under a signed tip or a signed merge.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.forge.errors import SourceRefused
from reconciler.forge.git_mirror import GitMirror, stderr_tail
from reconciler.forge.holds import COMMIT
from reconciler.untrusted.limits import MAX_COMMITS
from reconciler.untrusted.text import shown
from state.spec.source import CommitVerification

WHY = {
    "N": "is not signed",
    "B": "has a bad signature",
    "U": "is signed by a key that is not in source.verify.keys",
    "E": "is signed by a key that is not in source.verify.keys",
    "X": "has an expired signature",
    "Y": "is signed by an expired key",
    "R": "is signed by a revoked key",
}


class CommitRefused(SourceRefused):
    """A commit that `source.verify` does not let through; the message says which and why."""

    def __init__(self, commit: str, message: str) -> None:
        super().__init__(message)
        self.commit = commit


@dataclass(frozen=True)
class Keyring:
    allowed_signers: Path
    gnupghome: Path


def keyring(verify: CommitVerification, directory: Path) -> Keyring:
    """The keys of `verify` as git reads them, built once per set of keys under
    `directory` (the controller's state directory)."""
    digest = hashlib.sha256("\0".join(verify.keys).encode()).hexdigest()[:16]
    root = directory / "keys" / digest
    found = Keyring(root / "allowed_signers", root / "gnupg")
    if (root / ".complete").exists():
        return found
    partial = root.with_name(f"{digest}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "gnupg").mkdir(parents=True, mode=0o700)
    ssh = [k for k in verify.keys if not k.startswith("-----BEGIN")]
    pgp = [k for k in verify.keys if k.startswith("-----BEGIN")]
    (partial / "allowed_signers").write_text(
        "".join(f'key{i + 1} namespaces="git" {key}\n' for i, key in enumerate(ssh))
    )
    for key in pgp:  # its exit status also counts the agent it may not start: see below
        _gpg(partial / "gnupg", "--import", stdin=key, check=False)
    listing = _gpg(partial / "gnupg", "--with-colons", "--fingerprint")
    primaries = _primary_fingerprints(listing)
    if len(primaries) < len(pgp):  # every key given was imported, or none is used
        raise SourceRefused("source.verify.keys: a PGP key could not be read")
    if primaries:
        _gpg(
            partial / "gnupg", "--import-ownertrust", stdin="".join(f"{f}:6:\n" for f in primaries)
        )
    (partial / ".complete").touch()
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return found


def _primary_fingerprints(listing: str) -> list[str]:
    """The fingerprint of each primary key in `gpg --with-colons` output."""
    found, after_pub = [], False
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            after_pub = True
        elif fields[0] == "fpr" and after_pub and len(fields) > 9:
            found.append(fields[9])
            after_pub = False
        elif fields[0] in ("sub", "uid"):
            after_pub = False
    return found


def _gpg(home: Path, *args: str, stdin: str = "", check: bool = True) -> str:
    done = subprocess.run(
        ["gpg", "--batch", "--no-autostart", "--no-tty", "--homedir", str(home), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
    )
    if check and done.returncode != 0:
        raise SourceRefused(f"gpg {args[0]}: {done.stderr.strip()[-300:]}")
    return done.stdout


def to_verify(mirror: GitMirror, verify: CommitVerification, tip: str) -> list[str]:
    """The commits that must be signed before `tip` may be applied: the tip (`head`, or
    nothing in force yet), else every commit since the one in force, oldest first."""
    in_force = mirror.held("in-force")
    if verify.mode == "head" or in_force is None or in_force == tip:
        return [tip]
    commits = mirror.commits_between(in_force, tip)
    if len(commits) > MAX_COMMITS:
        raise CommitRefused(
            tip,
            f"commit {tip[:12]}: {len(commits)} commits since {in_force[:12]}, more than "
            f"{MAX_COMMITS} to verify",
        )
    return commits or [tip]


@dataclass(frozen=True)
class Signature:
    """What git says of one commit's signature: `status` is git's %G? letter (G good
    and from an allowed key; U good but from an unknown or untrusted key; N none; B
    bad; E cannot be checked; X/Y expired; R revoked), `signer` its principal or user
    ID, `key` the key's fingerprint."""

    commit: str
    status: str
    signer: str
    key: str


def read_signatures(
    mirror: GitMirror, commits: list[str], allowed_signers: Path, gnupghome: Path
) -> list[Signature]:
    """Each commit's signature, checked against these keys alone: SSH signatures
    against `allowed_signers`, OpenPGP ones against the keyring in `gnupghome`."""
    wanted = [c for c in commits if COMMIT.fullmatch(c)]
    if not wanted:
        return []
    done = mirror.exec_git(
        (
            "-c",
            f"gpg.ssh.allowedSignersFile={allowed_signers}",
            "log",
            "--no-walk=unsorted",
            "--format=%H%x1f%G?%x1f%GS%x1f%GF%x1e",
            *wanted,
        ),
        env={"GNUPGHOME": str(gnupghome)},
    )
    if done.returncode != 0:
        raise SourceRefused(f"git log failed: {stderr_tail(done.stderr)}")
    found = []
    for record in done.stdout.decode(errors="replace").split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) == 4 and COMMIT.fullmatch(fields[0]):
            # The signer's name is the commit author's text: escaped before anyone sees it.
            found.append(
                Signature(fields[0], fields[1], shown(fields[2][:200]), shown(fields[3][:100]))
            )
    return found


def verified_signer(mirror: GitMirror, verify: CommitVerification, tip: str, home: Path) -> str:
    """Who signed `tip`, once every commit `verify` asks for is signed by one of its keys.
    Raises CommitRefused naming the first commit that is not (and, when it is not the
    tip, the tip it would have let through)."""
    keys = keyring(verify, home)
    commits = to_verify(mirror, verify, tip)
    checked = {
        s.commit: s for s in read_signatures(mirror, commits, keys.allowed_signers, keys.gnupghome)
    }
    for commit in commits:
        signature = checked.get(commit, Signature(commit, "N", "", ""))
        if signature.status != "G":
            why = WHY.get(signature.status, f"has a signature git calls {signature.status!r}")
            under = "" if commit == tip else f" (under the tip {tip[:12]}; verify mode: all)"
            raise CommitRefused(tip, f"commit {commit[:12]} {why}{under}")
    return f"{checked[tip].signer} ({checked[tip].key})"
