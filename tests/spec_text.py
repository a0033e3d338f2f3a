"""State-file text for tests, built from the few fields a test cares about."""

from __future__ import annotations


def backup_policy(
    name: str,
    host: str,
    repository: str,
    password: str,
    *,
    paths: str = "[/etc/agent]",
    retention: str = "{keep_last: 2}",
    rpo: str = "1h",
    schedule: str = "hourly",
    more: tuple[str, ...] = (),
) -> str:
    """One entry of `backups:` (indented under it); `more`: further lines of the policy,
    as the state file writes them (`init: true`, `copies:` and its entries)."""
    lines = [
        f"  {name}:",
        f"    host: {host}",
        f"    paths: {paths}",
        f"    schedule: {schedule}",
        f"    retention: {retention}",
        f"    rpo: {rpo}",
        f"    repository: {repository}",
        f"    password: {password}",
        *(f"    {line}" for line in more),
    ]
    return "\n".join(lines) + "\n"
