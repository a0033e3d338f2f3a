"""The branch never moves the fleet backward by itself, and what a stranger can push at
the mirror is bounded: real git repositories on disk (reconciler.forge)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.forge.errors import SourceRefused, SourceUnavailable
from reconciler.forge.git_mirror import GitMirror
from reconciler.forge.source import accept, fetch_state, put_in_force
from state.spec.source import GitSource
from tests.unit.test_git_mirror import commit, forge, git  # noqa: F401 (the fixture)
from tests.unit.test_spec import BASE


def version(tag: str) -> str:
    return BASE.replace("version: 1", f"version: 1  # {tag}")


def test_a_force_push_to_an_older_commit_is_held_until_accepted(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    bare, work = forge
    source = GitSource(url=f"file://{bare}")
    controller = tmp_path / "controller"
    old = commit(work, "state/fleet.yaml", version("before the fix"))
    fixed = commit(work, "state/fleet.yaml", version("the security fix"))
    git(work, "push", "-q", "origin", "main")
    got = fetch_state(source, controller)
    assert got.commit == fixed and got.held is None
    put_in_force(source, controller, fixed)
    git(work, "push", "-q", "--force", "origin", f"{old}:main")  # back to before the fix
    got = fetch_state(source, controller)
    assert (got.commit, got.held) == (fixed, old)  # the fix stays in force
    assert "the security fix" in got.loaded.text
    git(work, "checkout", "-q", "-b", "side", old)  # a commit of an unmerged branch on it
    side = commit(work, "state/fleet.yaml", version("side"))
    git(work, "push", "-q", "--force", "origin", "side:main")
    got = fetch_state(source, controller)
    assert (got.commit, got.held) == (fixed, side)
    with pytest.raises(SourceRefused, match="expected the branch's tip"):
        accept(source, controller, old)  # only the tip the operator sees held
    assert accept(source, controller, side[:10]).commit == side
    got = fetch_state(source, controller)
    assert (got.commit, got.held) == (side, None)  # accepted: taken
    put_in_force(source, controller, side)
    mirror = GitMirror(f"file://{bare}", "main", controller / "source.git")
    assert mirror.held("accepted") is None  # in force now: the acceptance is spent
    git(work, "push", "-q", "--force", "origin", f"{fixed}:main")
    assert fetch_state(source, controller).held == fixed  # each backward move is asked


def test_a_descendant_is_followed_without_asking(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    bare, work = forge
    source = GitSource(url=f"file://{bare}")
    controller = tmp_path / "controller"
    first = commit(work, "state/fleet.yaml", version("1"))
    git(work, "push", "-q", "origin", "main")
    put_in_force(source, controller, fetch_state(source, controller).commit)
    assert first
    second = commit(work, "state/fleet.yaml", version("2"))
    git(work, "push", "-q", "origin", "main")
    got = fetch_state(source, controller)
    assert (got.commit, got.held) == (second, None)


def forged_commit(repo: Path, name: str) -> str:
    """A commit whose tree holds `name/config`: git's porcelain refuses to make one, a
    forge's objects need not come from it."""
    blob = git(repo, "hash-object", "-w", "--stdin", stdin="[core]\n\tfsmonitor = /tmp/x\n")
    inner = git(repo, "mktree", stdin=f"100644 blob {blob}\tconfig\n")
    tree = git(repo, "mktree", stdin=f"040000 tree {inner}\t{name}\n")
    return git(repo, "commit-tree", tree, "-m", "forged")


def test_a_git_directory_in_a_commit_is_refused(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    bare, work = forge
    commit(work, "state/fleet.yaml", BASE)
    git(work, "push", "-q", "origin", "main")
    mirror = GitMirror(f"file://{bare}", "main", tmp_path / "mirror")
    mirror.fetch()
    for name in (".git", ".GiT"):
        bad = forged_commit(tmp_path / "mirror", name)
        with pytest.raises(SourceRefused, match=r"a \.git directory is refused"):
            mirror.export(bad, tmp_path / "tree")
        assert not (tmp_path / "tree").exists()
    pushed = forged_commit(bare, ".GIT")  # on the forge: the fetch checks every object
    git(bare, "update-ref", "refs/heads/main", pushed)
    with pytest.raises(SourceUnavailable, match="fetch failed"):
        mirror.fetch()
    assert not mirror.has(pushed)


def test_a_pull_request_over_its_cap_is_refused_and_its_objects_collected(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    bare, work = forge
    commit(work, "state/fleet.yaml", BASE)
    git(work, "push", "-q", "origin", "main")
    git(work, "checkout", "-q", "-b", "big")
    (work / "blob.bin").write_bytes(os.urandom(3 << 20))  # does not compress
    big = commit(work, "state/fleet.yaml", version("big"))
    git(work, "push", "-q", "origin", "big:refs/pull/7/head")
    git(work, "checkout", "-q", "-b", "many", "main")
    for i in range(30):
        (work / f"f{i}").write_text(str(i))
    many = commit(work, "state/fleet.yaml", version("many"))
    git(work, "push", "-q", "origin", "many:refs/pull/8/head")
    mirror = GitMirror(f"file://{bare}", "main", tmp_path / "mirror")
    mirror.fetch()
    with pytest.raises(SourceRefused, match="more than 1048576 bytes"):
        mirror.fetch_pull(7, max_bytes=1 << 20)
    assert mirror.held("pull/7") is None and not mirror.has(big)  # collected at once
    with pytest.raises(SourceRefused, match="more than 20 objects"):
        mirror.fetch_pull(8, max_objects=20)
    assert mirror.held("pull/8") is None and not mirror.has(many)
    assert mirror.fetch_pull(8) == many  # within the default caps
    mirror.drop_pull(8)
    assert mirror.held("pull/8") is None
    assert mirror.collect() and not mirror.has(many)
    assert not mirror.collect(every=3600)  # collected just now


def test_the_watch_collects_its_mirror_hourly(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """A force-push leaves the old tip's objects in the mirror: the next collection, on
    its own hourly schedule, drops them."""
    from reconciler.forge.source import collect_mirror

    bare, work = forge
    source = GitSource(url=f"file://{bare}")
    controller = tmp_path / "controller"
    commit(work, "state/fleet.yaml", version("1"))
    dropped = commit(work, "state/fleet.yaml", version("dropped"))
    git(work, "push", "-q", "origin", "main")
    fetch_state(source, controller)
    git(work, "reset", "-q", "--hard", "HEAD~1")
    git(work, "push", "-q", "--force", "origin", "main")
    fetch_state(source, controller)
    mirror = GitMirror(f"file://{bare}", "main", controller / "source.git")
    assert mirror.has(dropped)
    assert collect_mirror(source, controller) and not mirror.has(dropped)
    assert not collect_mirror(source, controller)  # within the hour: not again
