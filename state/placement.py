"""Placement: (spec, failover state) -> the fleet that should run now. Pure.

Failover changes *where* the failover services and their backup policies run; nothing
else does. Observe, diff, plan and apply read the placed fleet and never look at
`service.host` behind its back. The controller and the SSH worker both call `place`
with the same `Placement`, so what is deployed is exactly what was planned.

Placement also adds the fencing guard (state.fence) as a service on the primary and on
the backup, and `guarded` names the units whose start it checks.
"""

from __future__ import annotations

from datetime import timedelta

from state.fence import GUARD, GUARD_SCRIPT, guard_watch_command
from state.layout import backup_unit
from state.placement_record import HOME as HOME
from state.placement_record import Placement as Placement
from state.spec.failover import Failover
from state.spec.fleet import Fleet
from state.spec.services import ConfigFile, Service, SystemdCheck, Unit


def data_policies(fleet: Fleet) -> list[str]:
    """The backup policies that move with the failover services."""
    failover = fleet.failover
    if failover is None:
        return []
    if failover.data is not None:
        return list(failover.data)
    return sorted(n for n, p in fleet.backups.items() if p.host == failover.primary)


def active_host(fleet: Fleet, placement: Placement) -> str | None:
    """The host that runs the failover services under `placement` (None: no failover)."""
    if fleet.failover is None:
        return None
    return placement.active or fleet.failover.primary


def guard_service(host: str) -> str:
    """The guard's unit name on `host` (service names are fleet-wide, so it is per host)."""
    return f"fleet-guard-{host}"


def guarded_units(fleet: Fleet) -> list[str]:
    """The units the guard checks and stops: failover services and their backups' runs."""
    if fleet.failover is None:
        return []
    return [*fleet.failover.services, *(backup_unit(p) for p in data_policies(fleet))]


def is_guarded(fleet: Fleet, unit_name: str) -> bool:
    return unit_name in guarded_units(fleet)


def place(fleet: Fleet, placement: Placement) -> Fleet:
    """The fleet that should run under `placement`."""
    failover = fleet.failover
    if failover is None:
        return fleet
    active = placement.active or failover.primary
    services = dict(fleet.services)
    backups = dict(fleet.backups)
    if active != failover.primary:
        for name in failover.services:
            services[name] = services[name].model_copy(update={"host": active})
        for name in data_policies(fleet):
            backups[name] = backups[name].model_copy(update={"host": active})
    guards = {
        guard_service(host): _guard(failover, host, guarded_units(fleet))
        for host in (failover.primary, failover.backup)
    }
    services = {**guards, **services}  # listed first, so plans and deploys start with them
    # The data policies, named: once moved they are no longer "the primary's policies".
    resolved = failover.model_copy(update={"data": data_policies(fleet)})
    return fleet.model_copy(update={"services": services, "backups": backups, "failover": resolved})


def _guard(failover: Failover, host: str, units: list[str]) -> Service:
    return Service(
        host=host,
        unit=Unit(
            description=f"fleet-reconciler failover guard ({failover.primary} -> "
            f"{failover.backup})",
            exec_start=guard_watch_command(units),
            restart="always",
            restart_sec=timedelta(seconds=1),
        ),
        config_files=[ConfigFile(path=GUARD, content=GUARD_SCRIPT, mode="0755")],
        health=[SystemdCheck(kind="systemd")],
        rto=timedelta(minutes=1),
    )


def without_host(fleet: Fleet, host: str) -> Fleet:
    """`fleet` without `host` and what runs on it: what a probe pass observes while the
    failover clock counts for an unreachable primary (its timeouts would slow the pass)."""
    return only_hosts(fleet, set(fleet.hosts) - {host}, keep_failover=True)


def only_hosts(fleet: Fleet, keep: set[str], keep_failover: bool = False) -> Fleet:
    """`fleet` with only the hosts `keep` and what runs on them. Its failover goes too
    when its primary does, unless `keep_failover`."""
    services = {n: s for n, s in fleet.services.items() if s.host in keep}
    failover = fleet.failover
    if failover is not None and failover.primary not in keep and not keep_failover:
        failover = None
    return fleet.model_copy(
        update={
            "hosts": {n: h for n, h in fleet.hosts.items() if n in keep},
            "services": services,
            "backups": {n: p for n, p in fleet.backups.items() if p.host in keep},
            "models": [m for m in fleet.models if m.service in services],
            "failover": failover,
        }
    )
