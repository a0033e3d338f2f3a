"""Cross-checks of promises: what a spec says it protects, which nothing would check or
could keep. A user who writes `failover:` believes they are protected; these refuse a
spec whose words promise more than the reconciler can do.

- a failover pair whose two hosts are one machine (the same address and SSH port);
- host roles that contradict the failover block;
- a service `rpo` on a host with no backup policy (nothing backs its data up), or
  tighter than a policy of its host promises (the drill would breach it every time);
- restic checks and drills more often than once an hour, and a DR drill more often
  than the loop's full pass (it restarts every service each time).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import timedelta

from state.spec.fleet import Fleet
from state.spec.hosts import Host

Found = tuple[tuple[str | int, ...], str]

VERIFY_FLOOR = timedelta(hours=1)
"""The shortest `check_every` and `drill_every` of a policy or copy: each reads the
repository (a restore drill restores a whole snapshot)."""


def broken_promises(fleet: Fleet) -> Iterator[Found]:
    """Every promise of `fleet` that nothing would keep, located by its field path."""
    yield from _pair_is_two_machines(fleet)
    yield from _roles_fit_the_failover(fleet)
    yield from _service_rpos(fleet)
    yield from _verification_intervals(fleet)


def _machine(host: Host) -> tuple[str, int]:
    """What identifies a machine as SSH reaches it: its normalised address and port."""
    try:
        ip = ipaddress.ip_address(host.address)
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        address = (mapped or ip).compressed
    except ValueError:
        address = host.address.lower().rstrip(".")
    return address, host.ssh_port


def _pair_is_two_machines(fleet: Fleet) -> Iterator[Found]:
    failover = fleet.failover
    if failover is None or failover.primary == failover.backup:
        return
    primary, backup = fleet.hosts.get(failover.primary), fleet.hosts.get(failover.backup)
    if primary is not None and backup is not None and _machine(primary) == _machine(backup):
        yield (
            ("failover", "backup"),
            f"'{failover.backup}' is the same machine as the primary '{failover.primary}' "
            f"({primary.address} port {primary.ssh_port}): expected a backup that survives "
            "the primary",
        )


def _roles_fit_the_failover(fleet: Fleet) -> Iterator[Found]:
    failover = fleet.failover
    if failover is None:
        return
    for name, host in fleet.hosts.items():
        if host.role == "primary" and name != failover.primary:
            yield (
                ("hosts", name, "role"),
                f"'primary', but failover.primary is '{failover.primary}': expected one "
                "primary, the failover block's",
            )
        elif host.role == "backup" and name != failover.backup:
            yield (
                ("hosts", name, "role"),
                f"'backup', but failover.backup is '{failover.backup}': expected one backup, "
                "the failover block's",
            )
        elif name in (failover.primary, failover.backup) and host.role == "witness":
            part = "primary" if name == failover.primary else "backup"
            yield (
                ("hosts", name, "role"),
                f"'witness', but the host is failover.{part}: expected '{part}' or unset",
            )


def _service_rpos(fleet: Fleet) -> Iterator[Found]:
    for name, service in fleet.services.items():
        if service.rpo is None:
            continue
        policies = {p: policy for p, policy in fleet.backups.items() if policy.host == service.host}
        if not policies:
            yield (
                ("services", name, "rpo"),
                f"no backup policy backs up host '{service.host}': expected one (under "
                "`backups:`) for an RPO to mean anything",
            )
            continue
        for policy_name, policy in sorted(policies.items()):
            if policy.rpo > service.rpo:
                yield (
                    ("services", name, "rpo"),
                    f"{_short(service.rpo)} is tighter than backups.{policy_name}.rpo "
                    f"({_short(policy.rpo)}) on the same host: expected at least "
                    f"{_short(policy.rpo)}, or a tighter policy",
                )


def _verification_intervals(fleet: Fleet) -> Iterator[Found]:
    for name, policy in fleet.backups.items():
        places: list[tuple[tuple[str | int, ...], timedelta]] = [
            (("backups", name, "check_every"), policy.check_every),
            (("backups", name, "drill_every"), policy.drill_every),
        ]
        for copy_name, copy in policy.copies.items():
            places += [
                (("backups", name, "copies", copy_name, "check_every"), copy.check_every),
                (("backups", name, "copies", copy_name, "drill_every"), copy.drill_every),
            ]
        for path, every in places:
            if every < VERIFY_FLOOR:
                yield (
                    path,
                    f"expected at least {_short(VERIFY_FLOOR)}: each run reads the repository",
                )
    settings = fleet.reconciler
    if settings.drill_every is not None and settings.drill_every < settings.interval:
        yield (
            ("reconciler", "drill_every"),
            f"expected at least reconciler.interval ({_short(settings.interval)}): the DR "
            "drill restarts every service, and runs at most once a full pass",
        )


def _short(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
