"""`reconcile watch`: the continuous, level-based reconcile loop.

Every pass observes the whole (targeted) fleet again and converges it; events only
wake the loop early and are never acted upon themselves. Three wake-ups: a full pass
every `interval`, light probes that read every host's health checks and models once
per `probe_interval` (in slices spread over the interval, see probe_round; drift wakes
a pass for just the affected hosts, right after their slice), and state-file edits
(watchfiles, debounced) or SIGHUP. SIGTERM lets the current pass finish, releases the
lock, exits 0. The backups' scheduled checks, drills and copies run beside the loop
(daemon.verifier), so a slow one never holds back a probe or a failover.

This process never applies gevent's monkey patching: SSH runs in child processes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import httpx

from reconciler.apply.context import ProgressReport, Report, Runner
from reconciler.coordination.etcd_memory import memory_for
from reconciler.coordination.guard import apply_guard, pull_shared, push_shared
from reconciler.coordination.leader import Leadership, LocalLeadership
from reconciler.coordination.shared_ledger import Pushed
from reconciler.daemon.backoff import Backoffs
from reconciler.daemon.failover_clock import FailoverClock
from reconciler.daemon.healing import account, drifted_hosts, settle
from reconciler.daemon.health import status_line
from reconciler.daemon.loop_status import LoopStatus
from reconciler.daemon.probe_round import ProbeRound
from reconciler.daemon.sdnotify import sd_notify
from reconciler.daemon.shared_backoffs import SharedBackoffs
from reconciler.daemon.spec_source import SpecSource, watch_spec_file
from reconciler.daemon.upkeep import Upkeep
from reconciler.daemon.verifier import Verifier
from reconciler.engine.plan import Plan, exclude_from_plan
from reconciler.errors import ReconcileError, write_traceback
from reconciler.events.bus import Event, EventBus
from reconciler.flows.failover_pass import tick
from reconciler.flows.leases import leases_kept
from reconciler.flows.lifecycle import execute_plan
from reconciler.flows.mover import Mover
from reconciler.flows.plan import plan_for
from reconciler.hosts.client import WarmWorker
from reconciler.hosts.observation import FleetState
from reconciler.hosts.observe import ObserveSettings, observe
from reconciler.hosts.protocol import Timeouts
from reconciler.repositories.restorable import announce_forged
from reconciler.store.failover_state import placed
from reconciler.store.journal import Journal
from reconciler.store.ledger import Ledger
from reconciler.store.lock import LockHeld, hosts_lock
from reconciler.store.memory import Memory
from reconciler.store.suspension import Suspension, lifted
from state.load import LoadedFleet
from state.placement import without_host
from state.spec.controller import ReconcilerSettings

PASS_LOCK_TIMEOUT_S = 5.0
VERIFICATIONS_AT_EXIT_S = 600.0
"""A run bounded by --max-passes or --max-seconds waits this long for its verifications."""
# A probe pass reads a few unit states: a host that takes longer is one observed fact
# ("no answer within 5s"), and the other hosts' drift is acted on in the same pass.
PROBE_SETTINGS = ObserveSettings(timeouts=Timeouts(connect=5.0, command=5.0), health_only=True)


class WatchLoop:
    def __init__(
        self,
        spec: SpecSource,
        journal: Journal,
        client: httpx.Client,
        bus: EventBus,
        report: Report,
        progress: ProgressReport,
        clock: Callable[[], float] = time.monotonic,
        sweep: Callable[[float], None] | None = None,
        leadership: Leadership | None = None,
        measure: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self.spec, self.journal, self.client, self.bus = spec, journal, client, bus
        self.report, self.progress, self.clock = report, progress, clock
        self.sweep = sweep  # escalation of open incidents, every probe pass
        self.leadership: Leadership = leadership or LocalLeadership()
        self.leading = False
        self.just_elected = False
        self.pushed: Pushed = {}  # each ledger as last shared (coordination.shared_ledger)
        self.measure = measure  # (kind, seconds, result) of each pass, for /metrics
        found = journal.loop_state(str(spec.path))
        self.first_start = float((found[1] if found else {}).get("first_start") or time.time())
        self.upkeep = Upkeep(journal, client, bus, lambda m: self.report(m), self.first_start)
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.status = LoopStatus()
        self.next_passes = (0.0, 0.0)  # (next full, next probe) on the loop's clock
        self.last_beat = clock()
        self.last_fetch = clock()  # the spec was just loaded (and its source fetched)
        assert spec.loaded is not None, "load the spec before starting the loop"
        self.backoffs = Backoffs(spec.loaded.fleet.reconciler, spec.loaded.fleet)
        self.shared_backoffs = SharedBackoffs(self.backoffs, self.leadership.memory, clock)
        self.ssh: WarmWorker | None = None  # one SSH worker, connections kept across passes
        self.suspended_said = ""  # what was last said of a plan held by `reconcile suspend`
        self.probes = ProbeRound()  # where the light probes stand in their round
        self.failover_clock = FailoverClock(clock)
        self.verifier = Verifier(journal.path, self.leadership.memory)  # checks, drills, copies
        self.on_applied: Callable[[str, bool, str], None] | None = None
        """Told after each full pass from a git source: (commit, converged, one line)."""

    # -- signals and wake-ups -------------------------------------------------------
    def request_stop(self) -> None:
        self.stop.set()
        self.wake.set()

    def request_reload(self) -> None:
        self.reload_requested.set()
        self.wake.set()

    def watch_file(self) -> None:
        """Thread body: wake the loop when the state file is saved (editors may replace it)."""
        watch_spec_file(self.spec.path, self._settings().debounce, self.stop, self.request_reload)

    # -- the loop ---------------------------------------------------------------------
    def run(self, max_passes: int | None = None, max_seconds: float | None = None) -> int:
        """Loop until SIGTERM (or the optional bounds, for tests and benchmarks). Returns 0."""

        def in_force() -> LoadedFleet | None:  # only a leader keeps the hosts' leases
            return self._scoped() if self.leading and self.leadership.acting() else None

        self.ssh = WarmWorker(cancel=self.stop)
        try:
            with leases_kept(in_force, self.journal.path, renew_first=False):
                return self._run(max_passes, max_seconds)
        finally:
            self.ssh.close()

    def _run(self, max_passes: int | None, max_seconds: float | None) -> int:
        started = self.clock()
        next_full, next_probe = started, started + self._probe_interval()
        sd_notify("READY=1")
        while not self.stop.is_set():
            if max_passes is not None and self.status.passes >= max_passes:
                break
            if max_seconds is not None and self.clock() - started >= max_seconds:
                break
            due = min(next_full, next_probe, next_fetch := self._next_fetch())
            self.wake.wait(max(0.0, min(due, self.failover_clock.due) - self.clock()))
            self.wake.clear()
            self.verifier.drain(self.bus, self.report)
            if self.stop.is_set():
                break
            if self.clock() >= next_fetch:  # the git source's interval: fetch the branch
                self.last_fetch = self.clock()
                self.reload_requested.set()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                if self.spec.reload():
                    self.backoffs.follow(self._scoped().fleet)
                    next_full = self.clock()
                elif self.suspended_said and lifted(self.memory()):
                    next_full = self.clock()  # resumed: the plan held is applied now
            now = self.clock()
            if now >= min(next_full, next_probe, self.failover_clock.due) and not self._lead():
                next_probe = self.clock() + self.leadership.next_campaign(self._probe_interval())
                next_full = max(next_full, next_probe)  # no busy loop
                self.failover_clock.due = float("inf")
                self.probes.restart()
                self._save_status(next_full, next_probe)
                continue
            if self.just_elected:
                self.just_elected, next_full = False, now  # a new leader looks at everything
            if now >= self.failover_clock.due and now < next_full:
                self._failover_pass()  # the grace ends: sight the pair at that moment
            elif now >= next_full:
                self._timed("full", lambda: self._pass("full", None))
                next_full = self.clock() + self._settings().interval.total_seconds()
                self.probes.restart()
                next_probe = self.clock() + self.probes.step(self._probe_interval())
            elif now >= next_probe:
                worth_saving = self._probe_tick()
                # at a fixed rate, so that rounds keep to probe_interval; one that ran
                # late (a heal) moves the rest on, it never bunches slices to catch up
                step = self.probes.step(self._probe_interval())
                next_probe = max(next_probe + step, self.clock())
                if not worth_saving:
                    self.next_passes = (next_full, next_probe)
                    self.beat()
                    continue
            self._after_pass()
            self._save_status(next_full, next_probe)
        sd_notify("STOPPING=1")
        # bounded runs (tests, benchmarks) see their verifications end; SIGTERM does not wait
        if not self.verifier.wait(0.0 if self.stop.is_set() else VERIFICATIONS_AT_EXIT_S):
            self.report("backup verifications still running: left to end with the process")
        self.verifier.drain(self.bus, self.report)
        return 0

    def _next_fetch(self) -> float:
        """When the git source is fetched next (never, without one)."""
        source = self.spec.source
        if source is None:
            return float("inf")
        return self.last_fetch + source.interval.total_seconds()

    def _lead(self) -> bool:
        """Whether this controller may act now; a new leader first takes the shared state."""
        was, self.leading = self.leading, self.leadership.campaign()
        regrouped = self.leadership.regrouped()  # another share of a sharded fleet
        if self.leading and (not was or regrouped):
            try:
                pulled = pull_shared(self.leadership, self.journal, self._scoped())
            except ReconcileError as exc:  # etcd went away again: not leading yet
                self.leading = False
                self.report(f"standing by: shared state not read: {exc}")
                return False
            self.just_elected, self.pushed = True, {}
            if said := "; ".join(filter(None, (pulled, self.shared_backoffs.load()))):
                self.report(said)
        elif not self.leading and (was or self.status.last_kind != "standby"):
            self.report(f"standing by: {self.leadership.why_not()}")
            self.status.last_kind = "standby"
        return self.leading

    def _after_pass(self) -> None:
        if self.leading and self.spec.loaded is not None:
            push_shared(self.leadership, self.journal, self._scoped(), self.pushed)
            self.leadership.note_pass(time.time())

    def _timed(self, kind: str, run: Callable[[], None]) -> None:
        started, errors = time.monotonic(), self.status.failed_passes
        run()
        if self.measure is not None:
            result = "error" if self.status.failed_passes > errors else "success"
            self.measure(kind, time.monotonic() - started, result)

    def memory(self) -> Memory:
        """The fleet's memory (with etcd: every controller's), as the spec in force names it."""
        return memory_for(self._settings().coordination, self.journal)

    def _settings(self) -> ReconcilerSettings:
        assert self.spec.loaded is not None
        return self.spec.loaded.fleet.reconciler

    def _probe_interval(self) -> float:
        return float(self._settings().probe_interval.total_seconds())

    def beat(self) -> None:
        self.last_beat = self.clock()

    def _scoped(self) -> LoadedFleet:
        """The last good spec, cut to the hosts this controller leads (coordination.shards)."""
        assert self.spec.loaded is not None
        return self.leadership.scope(self.spec.loaded)

    def share(self) -> LoadedFleet | None:
        """What /metrics reports on: the spec cut to the hosts this controller leads, or
        None on a standby (its last look is not the fleet's: the leader reports)."""
        if self.spec.loaded is None or not self.leading:
            return None
        return self._scoped()

    def _placed(self) -> LoadedFleet:
        """The last good spec (this controller's share), the failover services placed."""
        return placed(self._scoped(), self.journal)

    def _mover(self) -> Mover | None:
        loaded = self._scoped()
        if loaded.written.failover is None:
            return None
        guard = apply_guard(self.leadership, loaded)
        return Mover(loaded, self.journal, self.client, self.bus, self.report, self.progress, guard)

    def _probe_tick(self) -> bool:
        """Read the round's next slice; a new round first runs the failover pass (leases,
        detection). True when the round ended or a heal ran: worth saving and sharing."""
        probes = self.probes
        started, errors = time.monotonic(), self.status.failed_passes
        if probes.starting:
            # a pass timed to the deadline is due before this one would end: leave it to that
            timed = self.failover_clock.sighting_would_overrun()
            lost_primary = probes.lost_primary if timed else self._failover_pass()
            probes.begin(self._placed().fleet.hosts, lost_primary)
        healed = self._probe_slice(probes.current(), probes.lost_primary)
        failed = self.status.failed_passes > errors
        if not probes.advance(time.monotonic() - started, failed):
            return healed
        if self.sweep is not None:  # escalation of open incidents, once a round
            self.sweep(time.time())
        if self.measure is not None:  # a probe pass in /metrics: a round over every host
            self.measure("probe", probes.seconds, "error" if probes.failed else "success")
        return True

    def _probe_slice(self, hosts: frozenset[str], lost_primary: str | None) -> bool:
        """Health checks and models of `hosts`; heal the ones that drifted, at once (True
        when a heal ran). A primary the failover clock is counting for is neither
        observed nor healed: its timeouts would slow the passes that count."""
        loaded = self._placed()
        watched = loaded
        if lost_primary is not None:
            watched = replace(loaded, fleet=without_host(loaded.fleet, lost_primary))
        try:
            observed = observe(watched, self.client, replace(PROBE_SETTINGS, hosts=hosts), self.ssh)
        except ReconcileError as exc:
            self.report(f"probe pass {'abandoned' if self.stop.is_set() else 'failed'}: {exc}")
            return False
        self._remember(watched, observed)
        drifted = drifted_hosts(watched, observed)
        self.status.last_pass, self.status.last_kind = time.time(), "probe"
        if not drifted:
            return False
        self.report(f"probe: drift on {', '.join(sorted(drifted))}; reconciling")
        self._save_status(*self.next_passes)  # the page shows the drift while it heals
        self._timed("heal", lambda: self._pass("heal", sorted(drifted)))
        return True

    def _failover_pass(self) -> str | None:
        """Renew the lease, detect, move if due; the primary when it is out of reach."""
        self.failover_clock.due = float("inf")
        mover = self._mover()
        if mover is None:
            return None
        started = time.time()
        try:
            with hosts_lock(
                self.journal.path.parent, self._placed().fleet, PASS_LOCK_TIMEOUT_S, self.report
            ):
                verdict = tick(mover)
        except LockHeld as exc:
            self.report(f"failover pass skipped: {exc}")
            return None
        return self.failover_clock.decided(mover.failover, verdict, time.time() - started)

    def _pass(self, kind: str, targets: list[str] | None) -> None:
        loaded = self._placed()
        self.status.passes += 1
        self.status.last_pass, self.status.last_kind = time.time(), kind
        try:
            with hosts_lock(
                self.journal.path.parent, loaded.fleet, PASS_LOCK_TIMEOUT_S, self.report
            ):
                if kind == "full" and (mover := self._mover()) is not None:
                    tick(mover)
                    loaded = self._placed()
                self._converge(loaded, targets)
            held = bool(self.suspended_said)  # suspended: nothing was applied to report
            if kind == "full" and loaded.commit and self.on_applied is not None and not held:
                left = self.status.pending
                said = "converged" if not left else f"not converged: {', '.join(left)}"
                self.on_applied(loaded.commit, not left, said[:200])
            if kind == "full":  # scheduled backup checks, drills and copies, beside the loop
                self.verifier.start_due(loaded, self.bus, self.report)
                self.upkeep.run_due(loaded, self.leadership)
        except LockHeld as exc:
            self.report(f"pass skipped: {exc}")
        except ReconcileError as exc:
            if self.stop.is_set():  # SIGTERM while observing: nothing was changed
                self.report(f"pass abandoned: {exc}")
                return
            self.status.failed_passes += 1
            self.report(f"pass failed: {exc}")
        except Exception as exc:  # a daemon outlives one bad pass; the traceback is kept
            self.status.failed_passes += 1
            trace = write_traceback()
            self.report(f"pass crashed: {exc!r}; traceback written to {trace}")
            self.bus.emit(
                Event(
                    "P2",
                    "pass_crashed",
                    f"{kind} pass crashed: {exc!r}",
                    context={"traceback": str(trace)},
                )
            )
        self.beat()

    def _converge(self, loaded: LoadedFleet, targets: list[str] | None) -> None:
        planned = plan_for(
            loaded,
            self.journal,
            self.client,
            self.ssh,
            "keep",
            targets or (),
            on_ledger=lambda ledger: announce_forged(ledger, self.bus),
        )
        loaded, ledger = planned.loaded, planned.ledger
        assert ledger is not None  # the loop always has its journal
        self._remember(loaded, planned.observed)
        plan = planned.plan
        self.status.show_plan(plan)
        now = self.clock()
        scope = set(targets) if targets else None  # a heal pass saw only its hosts
        planned_keys = ((a.host, a.service) for a in plan.actions)
        blocked = settle(self.backoffs, self.bus, self.report, planned_keys, scope, now)
        plan = exclude_from_plan(plan, blocked)
        if not plan.summary.pending:
            return  # a pass with nothing to do is not journaled as a run
        if (suspended := Suspension(self.memory()).get()) is not None:
            said = (
                f"suspended ({suspended.reason}): {plan.summary.pending} change(s) planned, "
                "none applied; `reconcile resume` applies again"
            )
            if said != self.suspended_said:  # once per plan, not once per probe
                self.report(said)
            self.suspended_said = said
            return
        self.suspended_said = ""
        self._apply(loaded, plan, ledger, targets)

    def _apply(
        self, loaded: LoadedFleet, plan: Plan, ledger: Ledger, targets: list[str] | None
    ) -> None:
        guard = apply_guard(self.leadership, loaded, self.ssh)
        runner = Runner(
            self.client, self.journal, self.report, self.progress, guard=guard, ssh=self.ssh
        )
        with self.ssh.held() if self.ssh is not None else contextlib.nullcontext():
            try:
                result = execute_plan(loaded, plan, runner, "watch", targets or ())
            finally:  # what the apply's verification recorded
                announce_forged(ledger, self.bus)
        if result is None:
            return
        if result.observed is not None:  # the heal reaches the page when it happens
            self._remember(loaded, result.observed)
            self.status.last_pass = time.time()
        escalate_as = self._settings().escalation_severity
        account(self.backoffs, self.bus, escalate_as, plan, result, self.clock())
        if not result.converged:  # as history records it: a failed pass
            self.status.failed_passes += 1
        self.status.show_plan(result.remaining)

    def _remember(self, loaded: LoadedFleet, observed: FleetState) -> None:
        self.status.remember(loaded, observed, time.time(), self.first_start)

    def _save_status(self, next_full: float, next_probe: float) -> None:
        sd_notify(f"STATUS={status_line(self)}")
        self.next_passes = (next_full, next_probe)
        offset = time.time() - self.clock()
        self.status.next_full, self.status.next_probe = next_full + offset, next_probe + offset
        self.status.spec_error = self.spec.error
        self.status.backoffs = self.backoffs.in_force(self.clock())
        self.journal.save_loop_state(
            str(self.spec.path), self.status.record(self.spec, self.first_start)
        )
        self.beat()
