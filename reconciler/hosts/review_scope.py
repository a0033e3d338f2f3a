"""What a review may observe: the authority of the commit in force, never the proposal's.

A pull request's state file is written by a stranger. Planning it must give its author
nothing the commit in force (the *base*) does not already give them. So a review:

- contacts only hosts the base names, with exactly the connection fields the base gives
  them (address, user, port, key, known hosts), and never trusts a host key on first
  use; a host that is new or changed in the proposal is planned, not contacted;
- shows a file's or unit's content only where the base manages that path on that host
  (and does not mark it sensitive); elsewhere it says that a file is there and its size,
  never its content or hash;
- runs an HTTP or TCP check, asks a model endpoint, or lists a backup repository only
  when the base has the same one on the same host; the others are **not run** and the
  review says so;
- sights the failover pair only when the proposal's failover block is the base's.

`review_scope` decides all this from the two specs alone (pure); `withhold` applies it
to what the hosts answered, before the diff ever sees it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.hosts.observation import FileState, FleetState, HostState, UnitState
from state.layout import MANAGED_RECORD, backup_path, backup_unit, unit_path
from state.spec.fleet import Fleet
from state.spec.hosts import Host
from state.spec.services import FileInstall, HttpCheck, TcpCheck

CONNECTION_FIELDS = ("address", "ssh_user", "ssh_port", "ssh_key", "ssh_known_hosts")
NOT_RUN = "not run in a review: the commit in force has no such check on this host"
NOT_ASKED = "not asked in a review: the commit in force has no such endpoint on this host"
NOT_LISTED = "not listed in a review: the commit in force has no such backup policy"


@dataclass(frozen=True)
class ReviewScope:
    """What a review of a proposal may contact, read, show and run (see the module)."""

    contacted: frozenset[str]
    not_contacted: dict[str, str] = field(default_factory=dict)
    """Each proposal host the review leaves alone, and why."""
    visible: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per contacted host: the paths (files and unit files) whose content may be shown."""
    probes: frozenset[tuple[str, str]] = frozenset()
    """(host, check as JSON) of the HTTP and TCP checks the base runs on that host."""
    endpoints: frozenset[tuple[str, str]] = frozenset()
    """(host, endpoint template) of the model endpoints the base asks on that host."""
    backups: frozenset[str] = frozenset()
    """The backup policies the base has, exactly as the proposal writes them."""
    failover: bool = False
    """The proposal's failover block and its two hosts are the base's."""

    def may_probe(self, host: str, check: HttpCheck | TcpCheck) -> bool:
        return (host, check.model_dump_json()) in self.probes

    def may_ask(self, host: str, endpoint: str) -> bool:
        return (host, endpoint) in self.endpoints

    def withheld_lines(self, proposal: Fleet) -> list[str]:
        """What the review left alone, one line each, for the plan's reader."""
        lines = [
            f"  host {name}: not contacted ({why})"
            for name, why in sorted(self.not_contacted.items())
        ]
        for name, service in sorted(proposal.services.items()):
            if service.host not in self.contacted:
                continue
            for check in service.health:
                if isinstance(check, HttpCheck | TcpCheck) and not self.may_probe(
                    service.host, check
                ):
                    lines.append(f"  {name}: {check.kind} check {NOT_RUN.split(':')[0]}")
        for model_set in proposal.models:
            host = proposal.services[model_set.service].host
            if host in self.contacted and not self.may_ask(host, model_set.endpoint):
                lines.append(f"  {model_set.service}: models {NOT_ASKED.split(':')[0]}")
        for name, policy in sorted(proposal.backups.items()):
            if policy.host in self.contacted and name not in self.backups:
                lines.append(f"  backup {name}: repository {NOT_LISTED.split(':')[0]}")
        if proposal.failover is not None and not self.failover:
            lines.append("  failover: not sighted in a review (its block or hosts differ)")
        return lines


def same_connection(base: Host, proposed: Host) -> bool:
    """Whether the proposal reaches the host exactly as the base does."""
    return all(getattr(base, f) == getattr(proposed, f) for f in CONNECTION_FIELDS)


def review_scope(base: Fleet | None, proposal: Fleet) -> ReviewScope:
    """What a review of `proposal` may do, given the commit in force `base` (None: no
    commit is in force yet, and nothing is contacted)."""
    if base is None:
        why = "no commit is in force yet"
        return ReviewScope(frozenset(), {name: why for name in proposal.hosts})
    contacted, not_contacted = set(), {}
    for name, host in proposal.hosts.items():
        known = base.hosts.get(name)
        if known is None:
            not_contacted[name] = "new in this proposal"
        elif not same_connection(known, host):
            not_contacted[name] = "its connection differs from the commit in force"
        else:
            contacted.add(name)
    failover = (
        proposal.failover is not None
        and proposal.failover == base.failover
        and {proposal.failover.primary, proposal.failover.backup} <= contacted
    )
    return ReviewScope(
        frozenset(contacted),
        not_contacted,
        visible={name: frozenset(managed_paths(base, name)) for name in contacted},
        probes=frozenset(_probes(base)),
        endpoints=frozenset((base.services[m.service].host, m.endpoint) for m in base.models),
        backups=frozenset(
            name
            for name, policy in proposal.backups.items()
            if base.backups.get(name) == policy and policy.host in contacted
        ),
        failover=failover,
    )


def managed_paths(fleet: Fleet, host: str) -> Iterable[str]:
    """The paths `fleet` writes on `host` and may show: its record, its config files
    (not the sensitive ones), its binaries, unit files and backup files."""
    yield MANAGED_RECORD
    for name, service in fleet.services.items():
        if service.host != host:
            continue
        yield from (c.path for c in service.config_files if not c.sensitive)
        if isinstance(service.install, FileInstall):
            yield service.install.dest
        if service.unit is not None:
            yield unit_path(name)
    for name, policy in fleet.backups.items():
        if policy.host == host:
            unit = backup_unit(name)
            yield backup_path(name, "known_hosts")
            yield backup_path(name, "last")
            yield backup_path(name, "script")
            yield from (unit_path(f"{unit}.service"), unit_path(f"{unit}.timer"))


def _probes(fleet: Fleet) -> Iterable[tuple[str, str]]:
    for service in fleet.services.values():
        for check in service.health:
            if isinstance(check, HttpCheck | TcpCheck):
                yield service.host, check.model_dump_json()


def withhold(observed: FleetState, scope: ReviewScope) -> FleetState:
    """`observed` with every content and hash the base does not manage taken out: the
    file is still there, with its size; a unit file, with its size alone."""
    hosts = {
        name: _withheld_host(host, scope.visible.get(name, frozenset()))
        for name, host in observed.hosts.items()
    }
    return observed.model_copy(update={"hosts": hosts})


def _withheld_host(host: HostState, visible: frozenset[str]) -> HostState:
    files = {
        path: state if state is None or path in visible else _hidden_file(state)
        for path, state in host.files.items()
    }
    units = {
        name: state if unit_path(name) in visible else _hidden_unit(state)
        for name, state in host.units.items()
    }
    return host.model_copy(update={"files": files, "units": units})


def _hidden_file(state: FileState) -> FileState:
    return state.model_copy(update={"sha256": "", "content": None, "withheld": True})


def _hidden_unit(state: UnitState) -> UnitState:
    size = len(state.file.encode()) if state.file is not None else None
    if size is None and state.file_cut is not None:
        size = int(state.file_cut.partition(" ")[0] or 0)
    return state.model_copy(
        update={"file": None, "file_cut": None, "withheld_size": size, "dropins": []}
    )
