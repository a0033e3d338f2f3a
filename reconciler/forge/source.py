"""The desired state fetched from its git source (`source:` in the state file).

The state file on the controller is the bootstrap: it says where the desired state
lives. `fetch_state` fetches that branch, checks the signatures `source.verify` asks
for, exports the tip's tree (regular files only) and loads the state file from it,
with its templates and install sources, exactly as committed. The fetched state may
not point elsewhere: its own `source:` is either absent or the bootstrap's, so a
commit can neither move the controller to another forge nor change who may sign.

The mirror holds the commit in force as `refs/fleet/in-force`: `verify: {mode: all}`
checks every commit since it. `reconcile pin` holds a commit as `refs/fleet/pinned`:
while it is there, that commit is the desired state whatever the branch does (a
rollback the next fetch cannot undo), until `reconcile unpin`.

The branch never moves the fleet backward by itself. A fetched tip that does not
descend from the commit in force (a force-push to an older commit, even a signed one,
or to a commit of another branch) is **held**: the commit in force stays, and the tip
waits until an operator accepts it (`reconcile accept SHA`, kept as
`refs/fleet/accepted`) or pins a commit. TUF and in-toto refuse such rollbacks the
same way; Flux and Argo CD follow them.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.forge.errors import SourceRefused
from reconciler.forge.git_mirror import GC_EVERY_S, Fetched, GitMirror
from reconciler.forge.signatures import verified_signer
from reconciler.store.memory import Memory
from state.errors import SpecError, SpecProblem
from state.load import LoadedFleet, load_fleet
from state.secrets import resolve_secret
from state.spec.controller import Coordination
from state.spec.source import GitSource
from state.yaml_lines import line_for


@dataclass(frozen=True)
class FetchedState:
    loaded: LoadedFleet
    fetched: Fetched
    signer: str | None
    """Who signed the commit (`source.verify`), as git names them and their key."""
    pinned: bool = False
    """The commit is the one `reconcile pin` holds, not the branch's tip."""
    held: str | None = None
    """The branch's tip, when it does not descend from the commit in force and no
    operator accepted it: the commit in force stays (`loaded`), the tip waits."""

    @property
    def commit(self) -> str:
        """The commit the state was loaded from."""
        assert self.loaded.commit is not None
        return self.loaded.commit


def open_mirror(source: GitSource, state_dir: Path, memory: Memory | None = None) -> GitMirror:
    """The source's mirror under `state_dir` (the journal's directory). Raises
    SecretUnavailable when its token or key reference does not resolve."""
    extra: dict[str, str] = {}
    if source.token is not None:  # as an HTTP header, through git's environment config
        token = resolve_secret(source.token).reveal()
        extra = {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: token {token}",
        }
    ssh = None
    if source.url.startswith("ssh://"):
        options = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={source.known_hosts}",
            "-o",
            "IdentitiesOnly=yes",
        ]
        if source.ssh_key is not None:
            if not source.ssh_key.startswith("file:"):
                raise SpecError(
                    [SpecProblem("", None, "source.ssh_key", "expected file:/path of a key")]
                )
            options += ["-i", source.ssh_key.removeprefix("file:")]
        ssh = shlex.join(options)
    directory = state_dir / "source.git"
    return GitMirror(source.url, source.branch, directory, ssh, extra_env=extra, memory=memory)


def fetch_state(source: GitSource, state_dir: Path, memory: Memory | None = None) -> FetchedState:
    """Fetch the branch, verify its tip as `source.verify` asks, and load the state file
    from the tip's tree. Raises SourceUnavailable, SourceRefused (CommitRefused for a
    signature) or SpecError (the commit's own problems, located in its file)."""
    mirror = open_mirror(source, state_dir, memory)
    fetched = mirror.fetch()
    holds = mirror.holds()  # one read: pinned, in force, accepted
    pinned = holds.get("pinned")
    commit = pinned or fetched.commit
    held = None if pinned else backward(mirror, fetched.commit, holds)
    if held is not None:
        commit = holds["in-force"]
    signer = None
    if source.verify is not None:
        signer = verified_signer(mirror, source.verify, commit, state_dir)
    loaded = load_commit(mirror, commit, source, state_dir)
    return FetchedState(loaded, fetched, signer, pinned is not None, held)


def backward(mirror: GitMirror, tip: str, holds: dict[str, str]) -> str | None:
    """`tip`, when taking it would not move forward from the commit in force (it does
    not descend from it) and no operator accepted it; else None. `holds`: the mirror's
    held commits (GitMirror.holds)."""
    in_force = holds.get("in-force")
    if in_force is None or tip == in_force or holds.get("accepted") == tip:
        return None
    return None if mirror.is_ancestor(in_force, tip) else tip


def accept(
    source: GitSource, state_dir: Path, name: str, memory: Memory | None = None
) -> FetchedState:
    """Accept the held tip `name` (a full or abbreviated ID): the next fetch takes it even
    though it does not descend from the commit in force. It must be the branch's tip, pass
    `source.verify` and load; else nothing is accepted (SourceRefused, CommitRefused or
    SpecError)."""
    mirror = open_mirror(source, state_dir, memory)
    fetched = mirror.fetch()
    commit = mirror.resolve(name)
    if commit is None or commit != fetched.commit:
        raise SourceRefused(
            f"{name!r}: expected the branch's tip {fetched.commit[:12]} (only the tip is "
            "accepted; to run another commit, pin it)"
        )
    signer = None
    if source.verify is not None:
        signer = verified_signer(mirror, source.verify, commit, state_dir)
    loaded = load_commit(mirror, commit, source, state_dir)
    mirror.hold("accepted", commit)
    return FetchedState(loaded, fetched, signer)


def last_in_force(
    source: GitSource, state_dir: Path, memory: Memory | None = None
) -> LoadedFleet | None:
    """The commit last in force, from the mirror alone (no fetch): what a restarted
    `watch` runs on while the forge cannot be reached."""
    if not (state_dir / "source.git" / "HEAD").exists():
        return None
    mirror = open_mirror(source, state_dir, memory)
    commit = mirror.held("in-force")
    return load_commit(mirror, commit, source, state_dir) if commit else None


def collect_mirror(source: GitSource, state_dir: Path) -> bool:
    """`git gc --prune=now` of the mirror when its last collection is an hour old (old
    tips, reviewed pull requests); whether it ran. No network, no secret resolved."""
    mirror = GitMirror(source.url, source.branch, state_dir / "source.git")
    return (state_dir / "source.git" / "HEAD").exists() and mirror.collect(every=GC_EVERY_S)


def put_in_force(
    source: GitSource, state_dir: Path, commit: str, memory: Memory | None = None
) -> None:
    """Record `commit` as the one in force: the next `verify: {mode: all}` starts here,
    and the branch may only move forward from it."""
    mirror = open_mirror(source, state_dir, memory)
    mirror.hold("in-force", commit)
    if mirror.held("accepted") == commit:
        mirror.hold("accepted", None)


def pin(
    source: GitSource, state_dir: Path, name: str, memory: Memory | None = None
) -> FetchedState:
    """Hold the commit `name` (a full or abbreviated ID, fetched if need be) as the
    desired state. It must pass `source.verify` and load; else nothing is pinned
    (CommitRefused, SourceRefused or SpecError)."""
    mirror = open_mirror(source, state_dir, memory)
    commit = mirror.resolve(name)
    if commit is None:
        mirror.fetch()
        commit = mirror.resolve(name)
    if commit is None:
        raise SourceRefused(f"{name!r}: expected the ID of a commit of {source.url}")
    signer = None
    if source.verify is not None:
        signer = verified_signer(mirror, source.verify, commit, state_dir)
    loaded = load_commit(mirror, commit, source, state_dir)
    mirror.hold("pinned", commit)
    tip = mirror.tip() or commit
    return FetchedState(loaded, Fetched(tip, tip, False), signer, True)


def unpin(source: GitSource, state_dir: Path, memory: Memory | None = None) -> str | None:
    """Let the branch's tip be the desired state again; the commit that was pinned."""
    mirror = open_mirror(source, state_dir, memory)
    was = mirror.held("pinned")
    if was is not None:
        mirror.hold("pinned", None)
    return was


def load_commit(mirror: GitMirror, commit: str, source: GitSource, state_dir: Path) -> LoadedFleet:
    """The state file of `commit`, loaded from its exported tree (kept per commit, so a
    plan made from it is applied from the same files)."""
    trees = state_dir / "trees"
    tree = trees / commit
    if not tree.exists():
        partial = trees / f"{commit}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        mirror.export(commit, partial)
        partial.rename(tree)
        _prune_trees(trees, keep={commit, *filter(None, (mirror.held("in-force"),))})
    where = f"{source.path}@{commit[:12]}"  # what the author knows it by, not our tree
    try:
        loaded = replace(load_fleet(tree / source.path, root=tree), commit=commit)
    except SpecError as exc:
        inside = f"{tree}/"
        raise SpecError(
            [replace(p, file=where, message=p.message.replace(inside, "")) for p in exc.problems]
        ) from None
    fetched_source = loaded.fleet.source
    if fetched_source is not None and fetched_source != source:
        line = line_for(loaded.lines, ("source",))
        raise SpecError(
            [
                SpecProblem(
                    where,
                    line,
                    "source",
                    "expected no source, or the controller's own: a commit cannot move the "
                    "controller to another repository or branch",
                )
            ]
        )
    return loaded


KEPT_TREES = 20  # exported commits kept (the one in force always is)


def _prune_trees(trees: Path, keep: set[str]) -> None:
    """Drop all but the newest KEPT_TREES exported commits (pull requests add one each)."""
    found = sorted(
        (t for t in trees.iterdir() if t.is_dir() and t.name not in keep),
        key=lambda t: t.stat().st_mtime,
        reverse=True,
    )
    for old in found[KEPT_TREES:]:
        shutil.rmtree(old, ignore_errors=True)


MemoryOf = Callable[[Coordination], Memory | None]
"""The fleet's memory the bootstrap's `coordination` names (None: this mirror's own)."""


def desired_state(
    state_file: str | Path, journal: Path, memory_of: MemoryOf | None = None
) -> LoadedFleet:
    """What a command plans and applies: the state file, or, when it names a `source:`,
    the fetched branch's tip (the mirror is kept next to `journal`)."""
    bootstrap = load_fleet(state_file)
    source = bootstrap.fleet.source
    if source is None:
        return bootstrap
    memory = memory_of(bootstrap.fleet.reconciler.coordination) if memory_of else None
    return fetch_state(source, journal.parent, memory).loaded


def commit_in_force(
    state_file: str | Path, journal: Path, commit: str, memory_of: MemoryOf | None = None
) -> None:
    """A one-shot apply of `commit` (from the source `state_file` names) went ahead:
    `verify: {mode: all}` checks from it next."""
    bootstrap = load_fleet(state_file)
    source = bootstrap.fleet.source
    if source is not None:
        memory = memory_of(bootstrap.fleet.reconciler.coordination) if memory_of else None
        put_in_force(source, journal.parent, commit, memory)
