"""A review has the authority of the commit in force, never the pull request's: which
hosts it contacts and how, what it shows of what they hold, which checks it runs, and
who may be reviewed at all (reconciler.hosts.review_scope, reconciler.flows.review)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.diff import diff
from reconciler.engine.plan import make_plan
from reconciler.flows.review import author_refusal
from reconciler.hosts.observation import FileState, UnitState
from reconciler.hosts.observe import ObserveSettings, observe_request
from reconciler.hosts.review_scope import review_scope, withhold
from reconciler.render.plan_text import render_plan
from reconciler.store.journal import Journal
from state.spec.source import ReviewPolicy
from tests.unit.helpers import NOW, ideal_observation, load_text

BASE = """\
version: 1
hosts:
  kimi:
    address: 198.18.0.11
    host_key_policy: trust-on-first-use
  hermes:
    address: 198.18.0.12
services:
  agent:
    host: kimi
    unit: {description: agent, exec_start: /bin/sleep infinity}
    config_files:
      - {path: /etc/agent/agent.toml, content: "debug = false\\n"}
      - {path: /etc/agent/token, content: "t\\n", sensitive: true}
    health:
      - {kind: http, url: "http://{address}:8080/health"}
"""
SHADOW = "root:$y$j9T$SECRETHASHSECRETHASH:19000:0:99999:7:::\n"
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAsecretkey\n"


def proposal(extra: str = "", base: str = BASE) -> str:
    """The base, plus a service a stranger adds on kimi naming the host's secret files."""
    return (
        base.replace("sensitive: true", "sensitive: false")  # the proposal unmarks it
        + """\
  stealer:
    host: kimi
    unit: {description: x, exec_start: /bin/true}
    config_files:
      - {path: /etc/shadow, content: "x\\n"}
      - {path: /root/.ssh/id_ed25519, content: "x\\n"}
    health:
      - {kind: http, url: "http://{address}:9999/admin", expect_status: 599}
      - {kind: tcp, port: 2379}
"""
        + extra
    )


def stolen(path: str, content: str) -> FileState:
    import hashlib

    return FileState(
        mode="0600",
        owner="root",
        group="root",
        size=len(content),
        mtime=NOW,
        sha256=hashlib.sha256(content.encode()).hexdigest(),
        content=content,
    )


def test_only_base_hosts_with_the_base_s_connection_are_contacted() -> None:
    base = load_text(BASE).fleet
    changed = proposal(
        "  x: {host: evil, unit: {description: x, exec_start: /bin/true}}\n"
    ).replace(
        "    address: 198.18.0.12\n",
        "    address: 198.18.0.12\n    ssh_key: /root/.ssh/forge_deploy\n",
    )
    changed = changed.replace("hosts:\n", "hosts:\n  evil: {address: 198.18.0.99}\n", 1)
    scope = review_scope(base, load_text(changed).fleet)
    assert scope.contacted == {"kimi"}
    assert scope.not_contacted == {
        "evil": "new in this proposal",
        "hermes": "its connection differs from the commit in force",
    }
    request = observe_request(load_text(changed).fleet, ObserveSettings(review=scope))
    [target] = request.targets
    assert target.name == "kimi"  # the base trusts its key on first use; a review never does
    assert target.data["ssh_strict_host_key_checking"] == "yes"
    assert not request.whole_fleet  # a review never says which hosts left the fleet


def test_no_commit_in_force_contacts_nothing() -> None:
    scope = review_scope(None, load_text(BASE).fleet)
    assert scope.contacted == frozenset()
    assert set(scope.not_contacted) == {"kimi", "hermes"}


def test_a_file_the_base_does_not_manage_is_said_with_its_size_alone() -> None:
    """/etc/shadow, a root key, and a file the base marks sensitive (the proposal
    unmarks it): each planned as there, with its size; no line, no hash of it."""
    base = load_text(BASE)
    loaded = load_text(proposal())
    observed = ideal_observation(loaded)
    kimi = observed.hosts["kimi"]
    files = {
        **kimi.files,
        "/etc/shadow": stolen("/etc/shadow", SHADOW),
        "/root/.ssh/id_ed25519": stolen("/root/.ssh/id_ed25519", KEY),
        "/etc/agent/token": stolen("/etc/agent/token", "sekrit-token-value\n"),
    }
    units = {**kimi.units, "stealer": UnitState(active="active", sub="running", enabled="enabled", file="[Service]\nExecStart=/usr/sbin/hidden --password=hunter2\n")}  # fmt: skip
    observed = observed.model_copy(
        update={"hosts": {**observed.hosts, "kimi": kimi.model_copy(update={"files": files, "units": units})}}
    )  # fmt: skip
    scope = review_scope(base.fleet, loaded.fleet)
    shown = withhold(observed, scope)
    text = render_plan(make_plan(loaded, shown, diff(loaded, shown)))
    for secret in ("SECRETHASH", "secretkey", "sekrit-token", "hunter2"):
        assert secret not in text
    for content in (SHADOW, KEY, "sekrit-token-value\n"):
        import hashlib

        digest = hashlib.sha256(content.encode()).hexdigest()
        assert digest[:12] not in text and digest[:16] not in text
    assert "file /etc/shadow" in text and f"a file of {len(SHADOW)} bytes is there" in text
    assert "not shown in a review" in text
    unit = "[Service]\nExecStart=/usr/sbin/hidden --password=hunter2\n"
    assert f"a unit file of {len(unit)} bytes is there" in text, text
    # What the base manages, and does not mark sensitive, is shown as before.
    agent = shown.hosts["kimi"].files["/etc/agent/agent.toml"]
    assert agent is not None and agent.content == "debug = false\n" and not agent.withheld


def test_checks_and_repositories_the_base_does_not_have_are_not_run() -> None:
    base = load_text(BASE)
    loaded = load_text(proposal())
    scope = review_scope(base.fleet, loaded.fleet)
    [base_check] = base.fleet.services["agent"].health
    assert scope.may_probe("kimi", base_check)  # type: ignore[arg-type]
    for check in loaded.fleet.services["stealer"].health:
        assert not scope.may_probe("kimi", check)  # type: ignore[arg-type]
    lines = scope.withheld_lines(loaded.fleet)
    assert "  stealer: http check not run in a review" in lines
    assert "  stealer: tcp check not run in a review" in lines


def test_a_failover_block_is_sighted_only_as_the_base_writes_it() -> None:
    failover = "failover: {primary: kimi, backup: hermes, services: [agent], grace: 20s}\n"
    base = load_text(BASE + failover).fleet
    assert review_scope(base, load_text(BASE + failover).fleet).failover
    moved = failover.replace("grace: 20s", "grace: 30s")
    scope = review_scope(base, load_text(BASE + moved).fleet)
    assert not scope.failover
    assert "  failover: not sighted in a review (its block or hosts differ)" in (
        scope.withheld_lines(load_text(BASE + moved).fleet)
    )


def pull(head: str = "ops/fleet", base: str = "ops/fleet", login: Any = "ann") -> dict[str, Any]:
    return {
        "user": {"login": login},
        "head": {"repo": {"full_name": head}},
        "base": {"repo": {"full_name": base}},
    }


@pytest.mark.parametrize(
    ("policy", "found", "permission", "refused"),
    [
        (ReviewPolicy(), pull(), "write", None),
        (ReviewPolicy(), pull(), "admin", None),
        (ReviewPolicy(), pull(), "read", "cannot write to the repository"),
        (ReviewPolicy(), pull(), None, "cannot write to the repository"),
        (ReviewPolicy(), pull(head="mallory/fleet"), "write", "a fork"),
        (ReviewPolicy(forks=True), pull(head="mallory/fleet"), "write", None),
        (ReviewPolicy(), {"user": {"login": "ann"}}, "write", "a fork"),  # not named: refused
        (ReviewPolicy(), pull(login=None), "write", "does not name its author"),
        (ReviewPolicy(authors="anyone"), pull(), None, None),
    ],
)
def test_who_may_be_reviewed(
    policy: ReviewPolicy, found: dict[str, Any], permission: str | None, refused: str | None
) -> None:
    said = author_refusal(policy, found, lambda _login: permission)
    assert (said is None) == (refused is None), said
    if refused is not None:
        assert said is not None and refused in said


def test_a_review_s_journal_refuses_every_write(tmp_path: Path) -> None:
    import sqlite3

    Journal(tmp_path / "journal.db").close()
    journal = Journal(tmp_path / "journal.db", read_only=True)
    assert journal.runs(5) == []
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        journal.record_event(0.0, "P3", "spec_applied", None, None, "x", {})
