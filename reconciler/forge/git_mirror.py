"""The desired state's git source, as the controller holds it: a bare mirror of one branch.

`reconcile watch` applies exactly one commit, never a working tree: the branch is
fetched into a bare repository in the controller's state directory, resolved to a
commit, and files are read from that commit's tree (`read`), each within a size cap.

Everything the forge sends is untrusted. git runs with no user or system config, no
prompts, no hooks (a bare mirror that only fetches runs none), only the transports the
URL names, a deadline on every command, and a cap on what is read back. A branch whose
new tip does not descend from the old one was rewritten (a force-push): `fetch` says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.forge.errors import SourceRefused, SourceUnavailable
from reconciler.forge.holds import COMMIT, SHARED, merged, put
from reconciler.store.memory import Memory
from reconciler.untrusted.limits import PULL_BYTES, PULL_OBJECTS, TREE_BYTES, TREE_FILES
from reconciler.untrusted.text import shown
from state.yaml_lines import MAX_BYTES  # a state file or a template: the spec's bound

BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
TIMEOUT_S = 60.0
GC_EVERY_S = 3600.0  # the mirror is collected at most this often (after a review)


@dataclass(frozen=True)
class Fetched:
    """The branch's tip after a fetch, the tip before it, and whether the branch was
    rewritten in between (the old tip is not an ancestor of the new one)."""

    commit: str
    previous: str | None
    rewritten: bool

    @property
    def moved(self) -> bool:
        return self.commit != self.previous


class GitMirror:
    """A bare mirror of `branch` of `url` in `directory`."""

    def __init__(
        self,
        url: str,
        branch: str,
        directory: Path,
        ssh_command: str | None = None,
        timeout: float = TIMEOUT_S,
        extra_env: dict[str, str] | None = None,
        memory: Memory | None = None,
    ) -> None:
        if not BRANCH.fullmatch(branch) or ".." in branch or branch.startswith("-"):
            raise SourceRefused(f"branch {branch!r}: expected a plain branch name")
        self.url, self.branch, self.directory = url, branch, directory
        self.ssh_command, self.timeout = ssh_command, timeout
        self.extra_env = dict(extra_env or {})  # a token's header: never on a command line
        self.memory = memory  # the fleet's: where the SHARED holds live (forge.holds)

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"

    def fetch(self) -> Fetched:
        """Fetch the branch (following a force-push) and return where it now points."""
        self._exist()
        previous = self.tip()
        refspec = f"+{self.ref}:{self.ref}"
        with self._locked():  # never beside a collection, which would drop its new objects
            self._git("fetch", "--quiet", "--no-tags", "--prune", "--", self.url, refspec)
        commit = self.tip()
        if commit is None:
            raise SourceRefused(f"{self.url} has no branch {self.branch!r}")
        rewritten = previous is not None and not self.is_ancestor(previous, commit)
        return Fetched(commit, previous, rewritten)

    def fetch_pull(
        self, number: int, max_bytes: int = PULL_BYTES, max_objects: int = PULL_OBJECTS
    ) -> str:
        """Fetch pull request `number`'s head (Gitea's `refs/pull/N/head`) as
        refs/fleet/pull/N; its commit. A pull request may bring at most `max_bytes` to
        the mirror and `max_objects` objects the branch does not have: past either, the
        fetch is stopped or undone, its objects collected, and SourceRefused raised."""
        self._exist()
        ref = f"refs/fleet/pull/{int(number)}"
        refspec = f"+refs/pull/{int(number)}/head:{ref}"
        args = ("fetch", "--quiet", "--no-tags", "--", self.url, refspec)
        with self._locked():
            fitted = self._fetch_within(args, _size(self.directory / "objects") + max_bytes)
        if not fitted:
            self.drop_pull(number)
            self.collect()
            raise SourceRefused(f"pull request {number} brings more than {max_bytes} bytes")
        commit = self.held(f"pull/{int(number)}")
        if commit is None:
            raise SourceRefused(f"{self.url} has no pull request {number}")
        new = self._run("rev-list", "--objects", commit, "--not", f"--branches={self.branch}")
        if new.stdout.count("\n") > max_objects:
            self.drop_pull(number)
            self.collect()
            raise SourceRefused(f"pull request {number} brings more than {max_objects} objects")
        return commit

    def drop_pull(self, number: int) -> None:
        """Forget pull request `number`'s head (its objects go at the next `collect`)."""
        self._run("update-ref", "-d", f"refs/fleet/pull/{int(number)}")

    def collect(self, every: float = 0.0) -> bool:
        """`git gc --prune=now`: what no ref holds (a reviewed pull request, an old tip)
        leaves the mirror. With `every`, only when the last collection is that old;
        whether it ran."""
        stamp = self.directory / "fleet-gc"
        if every and stamp.exists() and time.time() - stamp.stat().st_mtime < every:
            return False
        with self._locked():
            self._git("gc", "--quiet", "--prune=now")
        stamp.touch()
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The mirror's lock: fetches and collections one at a time (watch's loop and its
        forge thread share the mirror)."""
        with open(self.directory / "fleet.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _fetch_within(self, args: tuple[str, ...], limit: int) -> bool:
        """Run a fetch, stopped when the mirror's objects grow past `limit` bytes (looked
        at by a thread every 50 ms, so that a small fetch ends as soon as git does)."""
        process = subprocess.Popen(
            self._argv(args, True),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=self._env(),
        )
        done, over = threading.Event(), threading.Event()

        def watch() -> None:
            while not done.wait(0.05):
                if _size(self.directory / "objects") > limit:
                    over.set()
                    process.kill()
                    return

        watcher = threading.Thread(target=watch, name="fetch-cap", daemon=True)
        watcher.start()
        try:
            _, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise SourceUnavailable(f"git fetch gave no answer within {self.timeout:g}s") from None
        finally:
            done.set()
            watcher.join()
        if over.is_set():
            return False
        if process.returncode != 0:
            raise SourceUnavailable(
                f"git fetch failed (exit {process.returncode}): {stderr_tail(stderr)}"
            )
        return _size(self.directory / "objects") <= limit

    def _exist(self) -> None:
        if not (self.directory / "HEAD").exists():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._git("init", "--quiet", "--bare", str(self.directory), inside=False)

    def tip(self) -> str | None:
        """The branch's commit in the mirror, or None before the first fetch."""
        done = self._run("rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}")
        commit = done.stdout.strip()
        return commit if done.returncode == 0 and COMMIT.fullmatch(commit) else None

    def has(self, commit: str) -> bool:
        """Whether the mirror holds `commit` (a full ID) as a commit."""
        if not COMMIT.fullmatch(commit):
            return False
        return self._run("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0

    def is_ancestor(self, old: str, new: str) -> bool:
        return self._run("merge-base", "--is-ancestor", old, new).returncode == 0

    def commits_between(self, old: str | None, new: str) -> list[str]:
        """Every commit reachable from `new` and not from `old`, oldest first (all of
        `new`'s history when `old` is None): what `verify: {mode: all}` checks."""
        span = [new] if old is None else [new, f"^{old}"]
        out = self._git("rev-list", "--reverse", *span)
        return [line for line in out.splitlines() if COMMIT.fullmatch(line)]

    def resolve(self, name: str) -> str | None:
        """The full ID of the commit `name` abbreviates (4 to 40 hex digits), if the mirror
        holds exactly one."""
        if not re.fullmatch(r"[0-9a-f]{4,40}", name):
            return None
        done = self._run("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        commit = done.stdout.strip()
        return commit if done.returncode == 0 and COMMIT.fullmatch(commit) else None

    def held(self, name: str) -> str | None:
        """The commit held as `name` (refs/fleet/NAME; the fleet's memory for SHARED)."""
        if self.memory is not None and name in SHARED:
            return self.holds().get(name)
        done = self._run("rev-parse", "--verify", "--quiet", f"refs/fleet/{name}^{{commit}}")
        commit = done.stdout.strip()
        return commit if done.returncode == 0 and COMMIT.fullmatch(commit) else None

    def holds(self) -> dict[str, str]:
        """Every commit held, by NAME, in one read (and one of the fleet's memory)."""
        listed = self._run("for-each-ref", "--format=%(refname) %(objectname)", "refs/fleet/")
        found = {}
        for line in listed.stdout.splitlines():
            ref, _, commit = line.partition(" ")
            if COMMIT.fullmatch(commit):
                found[ref.removeprefix("refs/fleet/")] = commit
        return merged(self.memory, found) if self.memory is not None else found

    def hold(self, name: str, commit: str | None) -> None:
        """Hold `commit` as refs/fleet/NAME (kept from gc), or drop it (None); a SHARED
        name in the fleet's memory too."""
        if commit is not None and not COMMIT.fullmatch(commit):
            return
        if self.memory is not None and name in SHARED:
            put(self.memory, name, commit)
        if commit is None:
            self._git("update-ref", "-d", f"refs/fleet/{name}")
        else:
            self._git("update-ref", f"refs/fleet/{name}", commit)

    def read(self, commit: str, path: str, limit: int = MAX_BYTES) -> bytes:
        """The file at `path` in `commit`'s tree (a regular blob, at most `limit` bytes).
        Raises SourceRefused for a missing path, a link, a tree or a file too large."""
        if not COMMIT.fullmatch(commit):
            raise SourceRefused(f"commit {commit!r}: expected a full commit ID")
        if path.startswith("/") or ".." in Path(path).parts or not path:
            raise SourceRefused(f"{path!r}: expected a path inside the repository")
        listed = self._run("ls-tree", "-z", "--full-tree", commit, "--", path)
        entry = listed.stdout.split("\0", 1)[0] if listed.returncode == 0 else ""
        if not entry:
            raise SourceRefused(f"{path} is not in commit {commit[:12]}")
        mode, kind, blob = entry.split("\t", 1)[0].split()
        if kind != "blob" or mode not in ("100644", "100755"):
            raise SourceRefused(f"{path} in commit {commit[:12]} is not a regular file")
        size = int(self._git("cat-file", "-s", blob).strip() or "0")
        if size > limit:
            raise SourceRefused(f"{path} in commit {commit[:12]} is {size} bytes, over {limit}")
        return self._run_bytes("cat-file", "blob", blob)

    def export(self, commit: str, dest: Path) -> Path:
        """Write `commit`'s tree into `dest` (made, private): regular files and
        directories only (a link or a submodule is left out), within TREE_FILES and
        TREE_BYTES. What the controller loads a spec from; never a working tree."""
        if not COMMIT.fullmatch(commit) or not self.has(commit):
            raise SourceRefused(f"commit {commit!r} is not in the mirror")
        listed = self._run_bytes("ls-tree", "-r", "-z", "-l", "--full-tree", commit)
        files: list[tuple[str, str, int]] = []
        for entry in filter(None, listed.split(b"\0")):
            meta, _, raw = entry.partition(b"\t")
            mode, kind, blob, size = meta.decode().split()
            path = raw.decode(errors="replace")
            if any(part.lower() == ".git" for part in path.split("/")):
                raise SourceRefused(
                    f"commit {commit[:12]}: {shown(path)[:200]!r}: a .git directory is refused "
                    "in the desired state's tree"
                )
            if kind == "blob" and mode in ("100644", "100755"):
                files.append((path, blob, int(size)))
        total = sum(size for _, _, size in files)
        if len(files) > TREE_FILES or total > TREE_BYTES:
            raise SourceRefused(
                f"commit {commit[:12]} holds {len(files)} files, {total} bytes; "
                f"the limit is {TREE_FILES} files, {TREE_BYTES} bytes"
            )
        dest.mkdir(parents=True, exist_ok=False, mode=0o700)
        root = dest.resolve()
        contents = self._blobs([blob for _, blob, _ in files])
        for path, blob, _ in files:
            target = (root / path).resolve()
            if root not in target.parents:  # git never stores such a path; a forge might
                raise SourceRefused(f"commit {commit[:12]}: {path!r} leads out of its tree")
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            target.write_bytes(contents[blob])
            target.chmod(0o600)
        return dest

    def _blobs(self, blobs: list[str]) -> dict[str, bytes]:
        """Each blob's content, read by one `git cat-file --batch` (not a process each)."""
        wanted = sorted(set(blobs))
        if not wanted:
            return {}
        try:
            done = subprocess.run(
                self._argv(("cat-file", "--batch"), True),
                input="".join(f"{b}\n" for b in wanted).encode(),
                capture_output=True,
                env=self._env(),
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired:
            raise SourceUnavailable(
                f"git cat-file gave no answer within {self.timeout:g}s"
            ) from None
        if done.returncode != 0:
            raise SourceRefused(f"git cat-file failed: {stderr_tail(done.stderr)}")
        out, at, found = done.stdout, 0, {}
        for blob in wanted:
            end = out.index(b"\n", at)
            name, kind, size = out[at:end].decode().split()
            if name != blob or kind != "blob":
                raise SourceRefused(f"git cat-file: expected blob {blob}, got {kind} {name}")
            found[blob] = out[end + 1 : end + 1 + int(size)]
            at = end + 1 + int(size) + 1  # the content, then a newline
        return found

    def reachable(self) -> str | None:
        """Why the branch cannot be listed at the source now (`git ls-remote`), or None.
        Reads nothing into the mirror."""
        try:
            done = self.exec_git(("ls-remote", "--heads", self.url, self.branch), inside=False)
        except SourceUnavailable as exc:
            return str(exc)
        if done.returncode != 0:
            return f"git ls-remote failed (exit {done.returncode}): {stderr_tail(done.stderr)}"
        if not done.stdout.strip():
            return f"the source has no branch {self.branch}"
        return None

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.directory),  # no user config: ~/.gitconfig is not read
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "LC_ALL": "C",
        }
        if self.ssh_command:
            env["GIT_SSH_COMMAND"] = self.ssh_command
        return {**env, **self.extra_env}

    def _argv(self, args: tuple[str, ...], inside: bool) -> list[str]:
        where = ["--git-dir", str(self.directory)] if inside else []
        # Only the transports a source may name; never ext:: (it runs a program) or fd::.
        allowed = [f"protocol.{p}.allow=always" for p in ("https", "http", "ssh", "file")]
        checked = ["transfer.fsckObjects=true", "fetch.fsckObjects=true", "gc.auto=0"]
        settings = ["protocol.allow=never", *allowed, *checked]
        config = [part for c in settings for part in ("-c", c)]
        return ["git", *where, *config, *args]

    def exec_git(
        self, args: tuple[str, ...], inside: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """One git command, within the deadline; its output as bytes."""
        try:
            return subprocess.run(
                self._argv(args, inside),
                capture_output=True,
                env={**self._env(), **(env or {})},
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise SourceUnavailable(
                f"git {args[0]} gave no answer within {self.timeout:g}s"
            ) from None

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.exec_git(args)
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(errors="replace"), ""
        )

    def _run_bytes(self, *args: str) -> bytes:
        done = self.exec_git(args)
        if done.returncode != 0:
            raise SourceRefused(f"git {args[0]} failed: {stderr_tail(done.stderr)}")
        return done.stdout

    def _git(self, *args: str, inside: bool = True) -> str:
        done = self.exec_git(args, inside)
        if done.returncode != 0:
            raise SourceUnavailable(
                f"git {args[0]} failed (exit {done.returncode}): {stderr_tail(done.stderr)}"
            )
        return done.stdout.decode(errors="replace")


def _size(folder: Path) -> int:
    """The bytes of the files under `folder` (0 when it is not there)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def stderr_tail(stderr: bytes) -> str:
    return " ".join(stderr.decode(errors="replace").strip().splitlines()[-2:])[-300:]
