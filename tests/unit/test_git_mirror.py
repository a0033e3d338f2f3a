"""The git source's mirror against real git repositories on disk: one branch fetched,
force-pushes followed and said, files read from a commit's tree within caps, and
nothing the forge sends runs a program."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.forge.errors import SourceRefused, SourceUnavailable
from reconciler.forge.git_mirror import GitMirror


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, input=stdin
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def forge(tmp_path: Path) -> tuple[Path, Path]:
    """A bare repository (the forge) and a clone that pushes to it."""
    bare, work = tmp_path / "forge.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    git(work, "remote", "add", "origin", str(bare))
    return bare, work


def commit(work: Path, name: str, text: str) -> str:
    path = work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-qm", f"{name}: {text[:10]}")
    return git(work, "rev-parse", "HEAD")


def test_a_fetch_resolves_the_branch_and_reads_that_commit(
    forge: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, work = forge
    first = commit(work, "state/fleet.yaml", "version: 1\n")
    git(work, "push", "-q", "origin", "main")
    mirror = GitMirror(f"file://{bare}", "main", tmp_path / "mirror")
    fetched = mirror.fetch()
    assert (fetched.commit, fetched.previous, fetched.rewritten) == (first, None, False)
    second = commit(work, "state/fleet.yaml", "version: 2\n")
    git(work, "push", "-q", "origin", "main")
    again = mirror.fetch()
    assert (again.commit, again.previous, again.rewritten, again.moved) == (
        second,
        first,
        False,
        True,
    )
    assert mirror.read(first, "state/fleet.yaml") == b"version: 1\n"  # that commit's tree
    assert mirror.read(second, "state/fleet.yaml") == b"version: 2\n"
    assert mirror.commits_between(first, second) == [second]
    assert mirror.commits_between(None, second) == [first, second]
    assert not mirror.fetch().moved


def test_a_force_push_is_followed_and_said(forge: tuple[Path, Path], tmp_path: Path) -> None:
    bare, work = forge
    commit(work, "a", "one")
    old = commit(work, "a", "two")
    git(work, "push", "-q", "origin", "main")
    mirror = GitMirror(str(bare), "main", tmp_path / "mirror")
    assert mirror.fetch().commit == old
    git(work, "reset", "-q", "--hard", "HEAD~1")
    new = commit(work, "a", "three")
    git(work, "push", "-q", "--force", "origin", "main")
    fetched = mirror.fetch()
    assert (fetched.commit, fetched.previous, fetched.rewritten) == (new, old, True)


def test_reads_stay_inside_the_commit_and_its_caps(
    forge: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, work = forge
    commit(work, "big.yaml", "x" * 2000)
    (work / "link.yaml").symlink_to("/etc/shadow")
    (work / "dir").mkdir()
    head = commit(work, "dir/f", "in a tree")
    git(work, "push", "-q", "origin", "main")
    mirror = GitMirror(str(bare), "main", tmp_path / "mirror")
    mirror.fetch()
    refusals = {
        "link.yaml": "is not a regular file",
        "dir": "is not a regular file",
        "missing.yaml": "is not in commit",
        "../outside": "expected a path inside the repository",
        "/etc/passwd": "expected a path inside the repository",
    }
    for path, said in refusals.items():
        with pytest.raises(SourceRefused, match=said):
            mirror.read(head, path)
    with pytest.raises(SourceRefused, match="2000 bytes, over 1000"):
        mirror.read(head, "big.yaml", limit=1000)
    with pytest.raises(SourceRefused, match="expected a full commit ID"):
        mirror.read("HEAD", "big.yaml")
    assert not mirror.has("0" * 40) and mirror.has(head)


def test_nothing_the_source_names_runs_a_program(tmp_path: Path) -> None:
    """git's `ext::` transport runs a command; a source URL never may."""
    marker = tmp_path / "ran"
    mirror = GitMirror(f"ext::sh -c touch% {marker}", "main", tmp_path / "mirror", timeout=10)
    with pytest.raises(SourceUnavailable, match="git fetch failed"):
        mirror.fetch()
    assert not marker.exists()
    for branch in ("-upload-pack=x", "a..b", "main;id", ""):
        with pytest.raises(SourceRefused, match="expected a plain branch name"):
            GitMirror("file:///nowhere", branch, tmp_path / "m2")


def test_a_commit_is_exported_as_regular_files_only(
    forge: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, work = forge
    commit(work, "state/fleet.yaml", "version: 1\n")
    commit(work, "state/templates/a.toml", "a = 1\n")
    (work / "state" / "link").symlink_to("/etc/shadow")
    head = commit(work, "README", "hello")
    git(work, "push", "-q", "origin", "main")
    mirror = GitMirror(str(bare), "main", tmp_path / "mirror")
    mirror.fetch()
    tree = mirror.export(head, tmp_path / "tree")
    found = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    assert found == ["README", "state/fleet.yaml", "state/templates/a.toml"]
    assert not (tree / "state" / "link").exists() and not (tree / "state" / "link").is_symlink()
    assert (tree / "state" / "templates" / "a.toml").read_text() == "a = 1\n"
    with pytest.raises(SourceRefused, match="is not in the mirror"):
        mirror.export("1" * 40, tmp_path / "other")
