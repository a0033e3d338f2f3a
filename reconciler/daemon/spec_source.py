"""The spec the watch loop runs on: the last good version of the state file.

A broken edit (YAML, schema, a dangling reference, or uncommitted changes when
`require_committed` is set) is reported once as a `spec_rejected` event and never
applied; the last good spec stays in force.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import watchfiles

from reconciler.coordination.etcd_memory import shared_memory
from reconciler.events.bus import Event, EventBus
from reconciler.forge.errors import SourceRefused, SourceUnavailable
from reconciler.forge.source import collect_mirror, fetch_state, last_in_force, put_in_force
from reconciler.store.journal import Journal
from reconciler.store.memory import Memory, MemoryUnavailable
from reconciler.store.state_origin import git_provenance
from state.errors import SpecError, SpecProblem
from state.load import LoadedFleet, load_fleet
from state.secrets import SecretUnavailable
from state.spec.source import GitSource

MAX_GROUPING_MS = 2000  # a file rewritten without pause is still read every 2 s


def watch_spec_file(
    path: Path, quiet: timedelta, stop: threading.Event, changed: Callable[[], None]
) -> None:
    """Call `changed` once per save of `path`: after `quiet` without another write to it.

    An editor's save is a burst (write to a temporary file and rename it over, or
    truncate and write in chunks, or several writes); the quiet time makes it one
    call, and the file is read whole. Editors that replace the file are followed
    because the directory is watched. Returns when `stop` is set.
    """
    target = path.resolve()
    for _ in watchfiles.watch(
        target.parent,
        stop_event=stop,
        step=max(1, int(quiet.total_seconds() * 1000)),
        debounce=MAX_GROUPING_MS,
        watch_filter=lambda _c, p: Path(p) == target,
        yield_on_timeout=False,
        rust_timeout=1000,
    ):
        changed()


class SpecSource:
    """The last good spec. A broken edit is reported once and the last good stays in force."""

    def __init__(self, path: Path, bus: EventBus, journal: Journal) -> None:
        self.path, self.bus, self.journal = path, bus, journal
        self.loaded: LoadedFleet | None = None
        self.source: GitSource | None = None  # the bootstrap file's, when it names one
        self.pinned = False  # the commit in force is the one `reconcile pin` holds
        self.branch_tip: str | None = None  # the source branch's tip at the last fetch
        self.held: str | None = None  # a tip that does not descend from the commit in force
        self.error: str | None = None
        self.memory: Memory | None = None  # the fleet's, with etcd: where the holds live
        self.exception: SpecError | None = None

    def reload(self) -> bool:
        """Re-read the file (and fetch its git source, when it names one); True when a
        new valid spec is now in force."""
        try:
            loaded = load_fleet(self.path)
            if loaded.fleet.source is not None:
                return self._from_source(loaded)
            self.source, self.pinned, self.branch_tip, self.held = None, False, None, None
            commit, dirty = git_provenance(loaded.file)
            _, file_dirty = git_provenance(loaded.file, whole_tree=False)
            if loaded.fleet.reconciler.require_committed and file_dirty is not False:
                problem = SpecProblem(
                    str(self.path),
                    None,
                    "reconciler.require_committed",
                    "the state file has uncommitted changes",
                )
                raise SpecError([problem])
        except SpecError as exc:
            return self._rejected(exc)
        return self._in_force(loaded, commit, dirty)

    def _from_source(self, bootstrap: LoadedFleet) -> bool:
        """The state from the bootstrap file's `source:`: the fetched branch's tip."""
        source = self.source = bootstrap.fleet.source
        assert source is not None
        memory = self.memory = shared_memory(bootstrap.fleet.reconciler.coordination)
        try:
            got = fetch_state(source, self.journal.path.parent, memory)
        except SpecError as exc:
            return self._rejected(exc)
        except (SourceUnavailable, SourceRefused, SecretUnavailable, MemoryUnavailable) as exc:
            problem = SpecProblem(source.url, None, "source", str(exc))
            self._rejected(SpecError([problem]))
            if self.loaded is None and isinstance(exc, SourceUnavailable | MemoryUnavailable):
                return self._last_in_force(source)  # a restart while the forge is down
            return False
        if got.held is not None and got.held != self.held:
            self.bus.emit(
                Event(
                    "P1",
                    "history_rewritten",
                    f"{source.url} {source.branch} is at {got.held}, which does not descend "
                    f"from the commit in force {got.commit}: held, the fleet stays on "
                    f"{got.commit[:12]} until `reconcile accept {got.held[:12]}` (or a pin)",
                    context={"held": got.held, "in_force": got.commit},
                )
            )
        elif got.held is None and got.fetched.rewritten:
            self.bus.emit(
                Event(
                    "P2",
                    "history_rewritten",
                    f"{source.url} {source.branch} was rewritten: {got.fetched.previous} -> "
                    f"{got.fetched.commit}; following it (it descends from the commit in "
                    "force, or an operator accepted it)",
                    context={"old": got.fetched.previous, "new": got.fetched.commit},
                )
            )
        self.pinned, self.branch_tip, self.held = got.pinned, got.fetched.commit, got.held
        collect_mirror(source, self.journal.path.parent)  # hourly, on a schedule of its own
        if self._in_force(got.loaded, got.commit, False, got.signer):
            put_in_force(source, self.journal.path.parent, got.commit, memory)
            return True
        return False

    def _last_in_force(self, source: GitSource) -> bool:
        try:
            try:
                last = last_in_force(source, self.journal.path.parent, self.memory)
            except MemoryUnavailable:  # etcd down too: this controller's own (it cannot lead)
                last = last_in_force(source, self.journal.path.parent)
        except (SpecError, SourceRefused):
            return False
        if last is None or last.commit is None:
            return False
        error, exception = self.error, self.exception
        in_force = self._in_force(last, last.commit, False)
        self.error, self.exception = error, exception  # the fetch still failed: say so
        return in_force

    def _rejected(self, exc: SpecError) -> bool:
        """Report a refused spec once; the last good stays in force."""
        self.exception = exc
        message = str(exc)
        if message != self.error:  # log each distinct error once, not every pass
            self.error = message
            self.bus.emit(
                Event(
                    "P2",
                    "spec_rejected",
                    f"state file rejected, last good spec stays in force: {message}",
                )
            )
        return False

    def _in_force(
        self, loaded: LoadedFleet, commit: str | None, dirty: bool | None, signer: str | None = None
    ) -> bool:
        self.error, self.exception = None, None
        same_commit = self.loaded is not None and loaded.commit == self.loaded.commit
        if self.loaded is not None and loaded.sha256 == self.loaded.sha256 and same_commit:
            return False
        self.loaded = loaded
        self.journal.record_spec(str(loaded.file), loaded.sha256, commit, dirty, signer)
        signed = f", signed by {signer}" if signer else ""
        self.bus.emit(
            Event(
                "P3",
                "spec_applied",
                f"spec {loaded.sha256[:12]} in force"
                + (f" (commit {commit[:12]}{signed})" if loaded.commit and commit else ""),
                context={"git_commit": commit, "git_dirty": dirty, "signer": signer},
            )
        )
        return True
