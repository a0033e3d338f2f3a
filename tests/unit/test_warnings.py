"""Warnings where a person would want one: the pager on the fleet, a public page."""

from __future__ import annotations

import pytest

from reconciler.web.app import is_loopback
from state.pager_placement import pager_on_fleet
from tests.unit.helpers import load_text

SPEC = """\
version: 1
hosts:
  kimi: {address: 198.18.0.1}
  hermes: {address: 198.18.0.2}
services: {}
notifications:
  channels:
    gitea:
      kind: gitea_issue
      url: http://198.18.0.2:3000
      repo: allegro/incidents
      token: env:GITEA_TOKEN
    tg:
      kind: telegram
      token: env:TELEGRAM_TOKEN
      chat_id: "1"
    log: {kind: log}
  routes: {P0: [tg, log], P1: [gitea, log]}
"""


def test_a_channel_on_a_fleet_host_is_warned_about_with_its_line() -> None:
    loaded = load_text(SPEC)
    (problem,) = pager_on_fleet(loaded.fleet, loaded.lines, "fleet.yaml")
    assert str(problem).startswith(
        "fleet.yaml:10: notifications.channels.gitea.url: http://198.18.0.2:3000 is hermes, "
        "a host of this fleet"
    )


def test_a_channel_elsewhere_is_not() -> None:
    loaded = load_text(SPEC.replace("198.18.0.2:3000", "198.18.1.9:3000"))
    assert pager_on_fleet(loaded.fleet, loaded.lines, "fleet.yaml") == []


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1:8080", True),
        (":8080", True),
        ("localhost:8080", True),
        ("[::1]:8080", True),
        ("0.0.0.0:8080", False),
        ("198.18.0.1:8080", False),
        ("[::]:8080", False),
        ("dash.example:8080", False),
    ],
)
def test_which_dashboard_addresses_are_loopback(address: str, local: bool) -> None:
    assert is_loopback(address) is local
