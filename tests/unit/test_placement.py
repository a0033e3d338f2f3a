"""Placement: (spec, failover state) -> the fleet that runs now. Pure."""

from __future__ import annotations

from state.fence import GUARD, GUARD_CHECK, lease_command, snapshot_epoch
from state.managed import managed_by_spec
from state.placement import Placement, data_policies, guard_service, guarded_units
from state.render import render_unit
from state.render_backup import render_service
from tests.unit.helpers import load_text

SPEC = """\
version: 1
hosts:
  kimi: {address: 198.18.0.11}
  hermes: {address: 198.18.0.12}
services:
  agent:
    host: kimi
    unit: {description: agent, exec_start: /bin/sleep infinity}
    config_files:
      - {path: /etc/agent.conf, content: "host=$host address=$address\\n"}
  web:
    host: hermes
    unit: {description: web, exec_start: /bin/sleep infinity}
backups:
  db: {host: kimi, sqlite: [/root/db.sqlite], schedule: hourly, retention: {keep_within: 30d},
       rpo: 1h, repository: "sftp:root@hermes:/srv/restic/kimi", password: env:RESTIC_PASSWORD}
failover:
  primary: kimi
  backup: hermes
  services: [agent]
  grace: 20s
  fence_after: 10s
"""


def test_home_placement_keeps_hosts_and_adds_a_guard_on_both() -> None:
    loaded = load_text(SPEC)
    fleet = loaded.fleet
    assert fleet.services["agent"].host == "kimi" and fleet.backups["db"].host == "kimi"
    for host in ("kimi", "hermes"):
        guard = fleet.services[guard_service(host)]
        assert guard.host == host and guard.config_files[0].path == GUARD
        assert guard.unit is not None and "watch agent fleet-backup-db" in guard.unit.exec_start
    assert data_policies(loaded.written) == ["db"]
    assert guarded_units(fleet) == ["agent", "fleet-backup-db"]


def test_failed_over_placement_moves_services_and_their_backups_only() -> None:
    loaded = load_text(SPEC).placed(Placement(active="hermes", epoch=3))
    fleet = loaded.fleet
    assert fleet.services["agent"].host == "hermes"
    assert fleet.backups["db"].host == "hermes"
    assert fleet.services["web"].host == "hermes"
    assert loaded.written.services["agent"].host == "kimi"  # the spec is untouched
    # Placing again from the placed value starts from the spec, not from the last placement.
    home = loaded.placed(Placement(epoch=4)).fleet
    assert home.services["agent"].host == "kimi"


def test_fenced_primary_keeps_its_failover_services_recorded() -> None:
    """While failed over, the primary's copies are held (fenced), never removed; the
    backup's are removed once the services are home again."""
    failed_over = load_text(SPEC).placed(Placement(active="hermes", epoch=1)).fleet
    assert "agent" in managed_by_spec(failed_over, "kimi").services
    assert "db" in managed_by_spec(failed_over, "kimi").backups
    home = load_text(SPEC).fleet
    assert "agent" not in managed_by_spec(home, "hermes").services


def test_guarded_units_check_the_lease_first() -> None:
    fleet = load_text(SPEC).fleet
    unit = fleet.services["agent"].unit
    assert unit is not None
    assert f"ExecStartPre=+{GUARD_CHECK}\n" in render_unit(unit, guarded=True)
    assert "ExecStartPre" not in render_unit(unit)
    assert f"ExecStartPre=+{GUARD_CHECK}\n" in render_service("db", guarded=True)


def test_repository_on_the_promoted_host_is_local_to_it() -> None:
    from state.repository import resolve_repository

    fleet = load_text(SPEC).placed(Placement(active="hermes", epoch=1)).fleet
    target = resolve_repository(fleet, fleet.backups["db"])
    assert target.url == "/srv/restic/kimi" and target.sftp_host == "hermes"


def test_lease_command_is_integers_only_and_refuses_lower_epochs() -> None:
    command = lease_command(7, 20)
    assert 'if [ 7 -lt "$seen" ]' in command and "$((now + 20))" in command
    assert "flock 9" in command


def test_snapshot_epoch_tag() -> None:
    assert snapshot_epoch(("db", "epoch-12")) == 12
    assert snapshot_epoch(("db",)) == 0
    assert snapshot_epoch(("epoch-x",)) == 0


def test_validate_warns_when_the_controller_is_one_of_the_pair() -> None:
    from reconciler.hosts.witness import is_local_address, witness_warning

    assert is_local_address("127.0.0.1") and not is_local_address("192.0.2.55")
    local = load_text(SPEC.replace("198.18.0.11", "127.0.0.1")).written
    warning = witness_warning(local)
    assert warning is not None and "failover primary kimi" in warning
    assert witness_warning(load_text(SPEC).written) is None


def test_without_host_drops_the_host_and_what_runs_there() -> None:
    from state.placement import without_host

    fleet = without_host(load_text(SPEC).fleet, "kimi")
    assert set(fleet.hosts) == {"hermes"}
    assert set(fleet.services) == {"fleet-guard-hermes", "web"}
    assert not fleet.backups
