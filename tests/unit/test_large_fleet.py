"""A fleet of hundreds of hosts is a state file the loader takes (the alias-bomb bound
counts values, and a 200-host fleet has about 10 200 of them)."""

from __future__ import annotations

from tests.unit.helpers import load_text


def fleet_text(hosts: int) -> str:
    lines = ["version: 1", "hosts:"]
    lines += [f"  s{i}: {{address: 198.18.{i // 250}.{i % 250 + 1}}}" for i in range(hosts)]
    lines.append("services:")
    for i in range(hosts):
        lines += [
            f"  web-s{i}:",
            f"    host: s{i}",
            "    unit: {description: web, exec_start: /usr/bin/python3 /usr/local/bin/web}",
            "    config_files: [{path: /etc/web/web.conf, content: 'mode = scale', mode: '0640'}]",
            "    health: [{kind: http, url: 'http://{address}:8080/api/tags'}, {kind: systemd}]",
            "    rto: 30s",
        ]
    return "\n".join(lines) + "\n"


def test_a_fleet_of_500_hosts_loads() -> None:
    loaded = load_text(fleet_text(500))
    assert len(loaded.fleet.hosts) == len(loaded.fleet.services) == 500
