"""Cross-reference checks that run after the schema is valid.

These catch what a schema cannot: names that point nowhere, failover naming one
host twice, two services writing the same file, a local install source whose
sha256 does not match.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from state.errors import SpecProblem, dotted
from state.fence import FENCE_MARGIN
from state.layout import unit_file
from state.local_files import LocalFileRefused, local_file, read_local
from state.owners import (
    RESERVED_PREFIXES,
    RESERVED_TREES,
    UNIT_SUFFIXES,
    FieldPath,
    own_paths,
    reserved,
    spec_paths,
)
from state.promises import broken_promises
from state.repository import is_ip, repository_host_name
from state.spec.failover import Failover
from state.spec.fleet import Fleet
from state.spec.services import FileInstall, HttpCheck, Service
from state.yaml_lines import LineMap, line_for

Found = tuple[tuple[str | int, ...], str]


def check_references(
    fleet: Fleet,
    lines: LineMap,
    file: str,
    state_dir: Path,
    templates: Mapping[str, str],
    refused: Mapping[str, str],
    root: Path | None = None,
) -> list[SpecProblem]:
    """Every cross-reference problem in `fleet`, each located by `lines`.

    `templates`, when given, are the templates already read (their names are checked
    against it instead of the disk). `root`: the git commit's tree every install source
    must lie in, for a state fetched from its source."""
    found = [
        *_unknown_hosts(fleet),
        *_model_services(fleet),
        *_failover(fleet),
        *_notification_routes(fleet),
        *_one_owner_per_path(fleet, lambda path: f"{file}:{line_for(lines, path)}"),
        *_service_names(fleet),
        *_repository_hosts(fleet),
        *_copies_apart(fleet),
        *_probes_reach_their_own_host(fleet),
        *_shards_and_reviews(fleet),
        *broken_promises(fleet),
        *_local_sources(fleet, state_dir, templates, refused, root),
    ]
    return [SpecProblem(file, line_for(lines, path), dotted(path), msg) for path, msg in found]


def _host_problem(fleet: Fleet, path: tuple[str | int, ...], host: str) -> Iterator[Found]:
    if host not in fleet.hosts:
        yield path, f"unknown host '{host}'; expected one of: {', '.join(sorted(fleet.hosts))}"


def _unknown_hosts(fleet: Fleet) -> Iterator[Found]:
    for name, service in fleet.services.items():
        yield from _host_problem(fleet, ("services", name, "host"), service.host)
    for name, policy in fleet.backups.items():
        yield from _host_problem(fleet, ("backups", name, "host"), policy.host)


def _shards_and_reviews(fleet: Fleet) -> Iterator[Found]:
    """The apply status of a commit speaks for the whole fleet; sharded, each controller
    applies only its share, and none of them can say the commit converged."""
    coordination = fleet.reconciler.coordination
    shards = getattr(coordination, "shards", 1)
    if shards > 1 and fleet.source is not None and fleet.source.reviews:
        yield (
            ("reconciler", "coordination", "shards"),
            "expected 1 with source.reviews: each controller of a sharded fleet applies "
            "its share alone, and none can post the apply status of a whole commit",
        )


def _model_services(fleet: Fleet) -> Iterator[Found]:
    for i, model_set in enumerate(fleet.models):
        if model_set.service not in fleet.services:
            yield ("models", i, "service"), f"unknown service '{model_set.service}'"


def _repository_hosts(fleet: Fleet) -> Iterator[Found]:
    """An sftp repository host written as a bare name must be a fleet host."""
    for name, policy in fleet.backups.items():
        target = repository_host_name(policy.repository)
        if target and "." not in target and not is_ip(target) and target not in fleet.hosts:
            yield (
                ("backups", name, "repository"),
                f"unknown host '{target}'; expected a fleet host ({', '.join(sorted(fleet.hosts))})"
                " or an address",
            )


def _copies_apart(fleet: Fleet) -> Iterator[Found]:
    """A copy survives what loses the policy's repository: it is on neither the policy's
    host nor its repository's host, and restic can reach it beside the repository."""
    for name, policy in fleet.backups.items():
        source_host = repository_host_name(policy.repository)
        source_sftp = source_host is not None or policy.repository.startswith("/")
        seen: set[str] = set()
        for copy_name, copy in policy.copies.items():
            path = ("backups", name, "copies", copy_name, "repository")
            target = repository_host_name(copy.repository)
            if copy.repository in seen or copy.repository == policy.repository:
                yield path, "expected a repository apart from the policy's and its other copies"
            seen.add(copy.repository)
            if target is None:
                continue
            if "." not in target and not is_ip(target) and target not in fleet.hosts:
                yield (
                    path,
                    f"unknown host '{target}'; expected a fleet host "
                    f"({', '.join(sorted(fleet.hosts))}) or an address",
                )
            elif target in (policy.host, source_host):
                role = "policy's host" if target == policy.host else "repository's host"
                yield path, f"'{target}' is the {role}: the copy would be lost with it"
            elif source_sftp:
                yield (
                    path,
                    "the policy's repository is reached over sftp, and restic 0.14 takes one "
                    "sftp command for both sides of a copy; expected local:/path on the "
                    "controller, rest: or s3:",
                )


def _probes_reach_their_own_host(fleet: Fleet) -> Iterator[Found]:
    """Health checks and Ollama endpoints are fetched by the controller, also during a
    reviewer's `--dry-run`, and their answers shown in the plan: they may only reach the
    service's own host, never another address (a metadata service, an internal API)."""
    for name, service in fleet.services.items():
        address = fleet.hosts[service.host].address if service.host in fleet.hosts else None
        for i, check in enumerate(service.health):
            if isinstance(check, HttpCheck) and address is not None:
                yield from _own_host(("services", name, "health", i, "url"), check.url, address)
    for i, model_set in enumerate(fleet.models):
        ollama = fleet.services.get(model_set.service)
        if ollama is not None and ollama.host in fleet.hosts:
            address = fleet.hosts[ollama.host].address
            yield from _own_host(("models", i, "endpoint"), model_set.endpoint, address)


def _own_host(path: tuple[str | int, ...], template: str, address: str) -> Iterator[Found]:
    reached = urlsplit(template.format(address=address)).hostname or ""
    if reached.lower() != address.lower().strip("[]"):
        yield (
            path,
            (
                f"reaches {reached!r}, not the service's host {address!r}; "
                "write the host as {address}"
            ),
        )


def _failover(fleet: Fleet) -> Iterator[Found]:
    failover = fleet.failover
    if failover is None:
        return
    yield from _host_problem(fleet, ("failover", "primary"), failover.primary)
    yield from _host_problem(fleet, ("failover", "backup"), failover.backup)
    if failover.primary == failover.backup:
        yield ("failover", "backup"), "must differ from failover.primary"
    hosts = {n: s.host for n, s in fleet.services.items()}
    yield from _on_primary(("failover", "services"), failover.services, hosts, "service", failover)
    yield from _listed_once(("failover", "services"), failover.services)
    yield from _listed_once(("failover", "data"), failover.data or [])
    policies = {n: p.host for n, p in fleet.backups.items()}
    yield from _on_primary(
        ("failover", "data"), failover.data or [], policies, "backup policy", failover
    )
    if failover.grace <= FENCE_MARGIN + timedelta(seconds=1):
        yield (
            ("failover", "grace"),
            f"must be longer than {_seconds(FENCE_MARGIN + timedelta(seconds=1))}: the "
            f"primary's lease (fence_after, at least 1s) must lapse at least "
            f"{_seconds(FENCE_MARGIN)} before the backup starts its copies; got "
            f"{_seconds(failover.grace)}",
        )
    elif failover.fence_after < 2 * fleet.reconciler.probe_interval:
        yield (
            ("failover", "fence_after"),
            f"must be at least twice reconciler.probe_interval "
            f"({_seconds(fleet.reconciler.probe_interval)}), which renews the lease, so that "
            f"one late renewal never fences a healthy primary; got "
            f"{_seconds(failover.fence_after)} (unset, it is 4/5 of grace)",
        )
    elif failover.fence_after + FENCE_MARGIN > failover.grace:
        yield (
            ("failover", "fence_after"),
            f"must be at least {FENCE_MARGIN.total_seconds():g}s shorter than grace "
            f"({_seconds(failover.grace)}), so that the primary has stopped its copies "
            f"before the backup starts them; got {_seconds(failover.fence_after)}",
        )
    yield from _collisions_on_backup(fleet, failover)


def _listed_once(path: tuple[str, str], names: list[str]) -> Iterator[Found]:
    for i, name in enumerate(names):
        if name in names[:i]:
            yield (*path, i), f"'{name}' is listed twice"


def _on_primary(
    path: tuple[str, str], names: list[str], hosts: dict[str, str], what: str, failover: Failover
) -> Iterator[Found]:
    """Every name must exist, and be on the primary."""
    for i, name in enumerate(names):
        if name not in hosts:
            yield (*path, i), f"unknown {what} '{name}'"
        elif hosts[name] != failover.primary:
            yield (
                (*path, i),
                f"{what} '{name}' is on '{hosts[name]}', not on the primary '{failover.primary}'",
            )


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"


def _collisions_on_backup(fleet: Fleet, failover: Failover) -> Iterator[Found]:
    """A moved service must not write a file that a service on the backup already owns."""
    owned = {
        path: name
        for name, service in fleet.services.items()
        if service.host == failover.backup
        for path in _paths(service)
    }
    for i, name in enumerate(failover.services):
        service = fleet.services.get(name)
        for path in _paths(service) if service else ():
            if path in owned:
                yield (
                    ("failover", "services", i),
                    f"{path} would collide on the backup '{failover.backup}' with service "
                    f"'{owned[path]}'",
                )


def _paths(service: Service) -> list[str]:
    paths = [f.path for f in service.config_files]
    if isinstance(service.install, FileInstall):
        paths.append(service.install.dest)
    return paths


def _notification_routes(fleet: Fleet) -> Iterator[Found]:
    if fleet.notifications is None:
        return
    channels = fleet.notifications.channels
    for severity, names in fleet.notifications.routes.items():
        for i, name in enumerate(names):
            if name not in channels:
                yield ("notifications", "routes", severity, i), f"unknown channel '{name}'"
    levels = fleet.notifications.escalation
    for level, spec in enumerate(levels):
        for i, name in enumerate(spec.notify):
            if name not in channels:
                yield (
                    ("notifications", "escalation", level, "notify", i),
                    (f"unknown channel '{name}'"),
                )
        if level and spec.after <= levels[level - 1].after:
            yield (
                ("notifications", "escalation", level, "after"),
                ("must be longer than the level before it"),
            )


def _one_owner_per_path(fleet: Fleet, where: Callable[[FieldPath], str]) -> Iterator[Found]:
    """Every path the reconciler writes on a host has one owner (state.owners); a file the
    user names is never in the reconciler's own trees or the unit directory."""
    owners: dict[tuple[str, str], FieldPath | None] = {
        (host, path): None for host in fleet.hosts for path in own_paths(fleet, host)
    }
    for host, path, owner, written in spec_paths(fleet):
        if written and reserved(path):
            yield (
                owner,
                (
                    f"{path} is where fleet-reconciler keeps its own files (units and their "
                    "drop-ins, its keys, the fencing guard); expected a path outside "
                    + ", ".join(RESERVED_TREES)
                ),
            )
            continue
        key = (host, path)
        if key not in owners:
            owners[key] = owner
            continue
        first = owners[key]
        by = "fleet-reconciler itself" if first is None else f"{dotted(first)} ({where(first)})"
        yield owner, f"{path} on host '{host}' is already written by {by}"


def _service_names(fleet: Fleet) -> Iterator[Found]:
    """A service's name is its unit's name: one that carries a unit type, or the
    reconciler's own prefixes, would be another unit."""
    for name in fleet.services:
        if name.endswith(UNIT_SUFFIXES):
            yield (
                ("services", name),
                (
                    f"expected a name without a unit type: the unit is {unit_file(name)}, "
                    f"so '{name.rsplit('.', 1)[0]}' and '{name}' would be the same unit"
                    if name.endswith(".service")
                    else f"expected a name without a unit type ('{name.rsplit('.', 1)[1]}')"
                ),
            )
        elif name.startswith(RESERVED_PREFIXES):
            yield (
                ("services", name),
                (
                    f"names starting {' or '.join(map(repr, RESERVED_PREFIXES))} are "
                    "fleet-reconciler's own units"
                ),
            )


def _local_sources(
    fleet: Fleet,
    state_dir: Path,
    templates: Mapping[str, str],
    refused: Mapping[str, str],
    root: Path | None,
) -> Iterator[Found]:
    """Install sources, found where state.local_files allows and with the sha256 pinned;
    templates, as read (or refused) by state.local_files. A source outside the state
    directory gets one message for missing and for a different hash: a pull request's
    dry run must not learn whether a file exists on the controller, nor its hash."""
    for name, service in fleet.services.items():
        install = service.install
        if isinstance(install, FileInstall) and "://" not in install.source:
            path: tuple[str | int, ...] = ("services", name, "install", "source")
            if problem := _source_problem(state_dir, install.source, install.sha256, root):
                yield path, problem
        for i, config in enumerate(service.config_files):
            if config.template is None or config.template in templates:
                continue
            why = refused.get(config.template, "not found")
            yield (
                ("services", name, "config_files", i, "template"),
                (f"template {config.template}: {why}"),
            )


def _source_problem(state_dir: Path, source: str, sha256: str, root: Path | None) -> str | None:
    try:
        real = local_file(state_dir, source, inside_only=False, root=root)
    except LocalFileRefused as exc:
        return f"{source}: {exc}"
    actual: str | None = None
    try:
        actual = hashlib.sha256(read_local(real)).hexdigest()
    except LocalFileRefused as exc:
        unread = str(exc)
    if actual == sha256:
        return None
    if not real.is_relative_to(Path(os.path.realpath(state_dir))):
        return f"{source}: not found, or not the file the sha256 pins ({OUTSIDE})"
    if actual is None:
        return f"file not found: {source} ({unread})"
    return f"sha256 mismatch: spec says {sha256[:12]}…, file is {actual}"


OUTSIDE = "it is outside the state directory, so no more is said"
