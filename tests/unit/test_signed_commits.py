"""`source.verify`: real SSH and OpenPGP signatures made by git, checked by git against
the keys of the controller's state file alone."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.forge.git_mirror import GitMirror
from reconciler.forge.signatures import CommitRefused, verified_signer
from state.spec.source import CommitVerification
from tests.signing import Signer, gpg_signer, ssh_signer, stop_agents
from tests.unit.test_git_mirror import commit, forge, git  # noqa: F401 (the fixture)


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Signer]]:
    where = tmp_path_factory.mktemp("signers")
    made = {
        "ops": ssh_signer(where, "ops"),
        "stranger": ssh_signer(where, "stranger"),
        "release": gpg_signer(where, "release"),
    }
    yield made
    for signer in made.values():
        stop_agents(signer)


def signed(work: Path, signer: Signer, name: str, text: str) -> str:
    path = work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(work, "add", "-A")
    config = [part for c in signer.config for part in ("-c", c)]
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "HOME": str(work),
        "PATH": "/usr/bin:/bin",
        **signer.env,
    }
    subprocess.run(
        ["git", "-C", str(work), *config, "commit", "-q", "-S", "-m", text[:20]],
        check=True,
        env=env,
        capture_output=True,
    )
    return git(work, "rev-parse", "HEAD")


def fetched(bare: Path, work: Path, mirror: Path) -> tuple[GitMirror, str]:
    git(work, "push", "-q", "--force", "origin", "main")
    source = GitMirror(f"file://{bare}", "main", mirror)
    return source, source.fetch().commit


def test_a_commit_signed_by_an_allowed_key_passes_and_names_its_signer(
    forge: tuple[Path, Path],  # noqa: F811
    signers: dict[str, Signer],
    tmp_path: Path,
) -> None:
    bare, work = forge
    verify = CommitVerification(keys=[signers["ops"].public, signers["release"].public])
    signed(work, signers["ops"], "a", "ssh\n")
    mirror, tip = fetched(bare, work, tmp_path / "m")
    assert verified_signer(mirror, verify, tip, tmp_path).startswith("key1 (SHA256:")
    tip = signed(work, signers["release"], "a", "gpg\n")
    mirror, tip = fetched(bare, work, tmp_path / "m")
    assert verified_signer(mirror, verify, tip, tmp_path).startswith(
        "release <release@example.invalid> ("
    )


@pytest.mark.parametrize(
    ("who", "why"),
    [
        (None, "is not signed"),
        ("stranger", "is signed by a key that is not in source.verify.keys"),
        ("release", "is signed by a key that is not in source.verify.keys"),
    ],
)
def test_an_unsigned_or_unknown_commit_is_refused(
    forge: tuple[Path, Path],  # noqa: F811
    signers: dict[str, Signer],
    tmp_path: Path,
    who: str | None,
    why: str,
) -> None:
    bare, work = forge
    verify = CommitVerification(keys=[signers["ops"].public])  # release's PGP key is not here
    tip = commit(work, "a", "plain\n") if who is None else signed(work, signers[who], "a", "x\n")
    mirror, tip = fetched(bare, work, tmp_path / "m")
    with pytest.raises(CommitRefused) as info:
        verified_signer(mirror, verify, tip, tmp_path)
    assert str(info.value) == f"commit {tip[:12]} {why}" and info.value.commit == tip


def test_mode_all_refuses_an_unsigned_commit_under_a_signed_merge_and_head_does_not(
    forge: tuple[Path, Path],  # noqa: F811
    signers: dict[str, Signer],
    tmp_path: Path,
) -> None:
    """Argo CD and Flux check the tip alone: a signed merge of an unsigned branch passes
    there. `mode: all` checks every commit since the one in force."""
    bare, work = forge
    ops = signers["ops"]
    base = signed(work, ops, "a", "base\n")
    mirror, tip = fetched(bare, work, tmp_path / "m")
    mirror.hold("in-force", base)
    git(work, "checkout", "-q", "-b", "feature")
    sneaked = commit(work, "b", "unsigned change\n")
    git(work, "checkout", "-q", "main")
    signed(work, ops, "c", "signed change\n")
    env_config = [part for c in ops.config for part in ("-c", c)]
    subprocess.run(
        ["git", "-C", str(work), *env_config, "merge", "-q", "-S", "--no-edit", "feature"],
        check=True,
        capture_output=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(work), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    mirror, merge = fetched(bare, work, tmp_path / "m")
    every = CommitVerification(keys=[ops.public], mode="all")
    with pytest.raises(CommitRefused) as info:
        verified_signer(mirror, every, merge, tmp_path)
    assert str(info.value) == (
        f"commit {sneaked[:12]} is not signed (under the tip {merge[:12]}; verify mode: all)"
    )
    head = CommitVerification(keys=[ops.public], mode="head")
    assert verified_signer(mirror, head, merge, tmp_path).startswith("key1 ")
    mirror.hold("in-force", merge)  # once past it (a pin, say), the next commits alone count
    after = signed(work, ops, "d", "later\n")
    mirror, tip = fetched(bare, work, tmp_path / "m")
    assert tip == after and verified_signer(mirror, every, tip, tmp_path).startswith("key1 ")


def test_keys_are_refused_unless_they_are_public_keys() -> None:
    from pydantic import ValidationError

    for bad in ["ssh-ed25519 $(id)", "-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n", "AAAA", ""]:
        with pytest.raises(ValidationError):
            CommitVerification(keys=[bad])
    with pytest.raises(ValidationError):
        CommitVerification(keys=[])
