"""Where the pager lives: a notification channel served by a host of the fleet itself.

Not an error (a small fleet may have nowhere else to run Gitea), but a person should
know, so `validate` warns: the pager would go down with the fleet it pages about, and
the channel's token is sent to that host, which can then read it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from state.errors import SpecProblem, dotted
from state.spec.fleet import Fleet
from state.spec.notifications import GiteaIssueChannel, TelegramChannel
from state.yaml_lines import LineMap, line_for


def pager_on_fleet(fleet: Fleet, lines: LineMap, file: str) -> list[SpecProblem]:
    """A located warning for each channel whose URL is a fleet host's address."""
    if fleet.notifications is None:
        return []
    hosts = {host.address: name for name, host in fleet.hosts.items()}
    problems = []
    for name, channel in fleet.notifications.channels.items():
        if isinstance(channel, GiteaIssueChannel):
            field, url = "url", str(channel.url)
        elif isinstance(channel, TelegramChannel):
            field, url = "api_url", str(channel.api_url)
        else:
            continue  # a log line runs where the controller runs
        found = hosts.get(urlsplit(url).hostname or "")
        if found is None:
            continue
        path = ("notifications", "channels", name, field)
        problems.append(
            SpecProblem(
                file,
                line_for(lines, path),
                dotted(path),
                f"{url} is {found}, a host of this fleet: the pager would go down with "
                f"the fleet it pages about, and the token of channel {name} is sent to {found}; "
                "expected a channel that does not run on the fleet",
            )
        )
    return problems
