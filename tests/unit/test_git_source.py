"""The desired state loaded from a commit of its git source, never from a working tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.forge.source import fetch_state
from state.errors import SpecError
from state.spec.source import GitSource
from tests.unit.test_git_mirror import commit, forge, git  # noqa: F401 (the fixture)
from tests.unit.test_spec import BASE


def test_the_state_is_the_fetched_commit_with_its_templates(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    bare, work = forge
    source = GitSource(url=f"file://{bare}", path="state/fleet.yaml")
    commit(work, "state/templates/agent.toml", "interval = {{ interval }}\n")
    first = commit(work, "state/fleet.yaml", BASE)
    git(work, "push", "-q", "origin", "main")
    (work / "state" / "fleet.yaml").write_text("not: [valid")  # a working tree, unsaved
    got = fetch_state(source, tmp_path / "controller")
    assert got.fetched.commit == first
    assert set(got.loaded.fleet.hosts) == {"kimi", "hermes"}
    assert got.loaded.text == BASE  # the commit's file, byte for byte


def test_a_commit_cannot_move_the_controller_to_another_source(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    bare, work = forge
    source = GitSource(url=f"file://{bare}")
    moved = BASE + "source: {url: 'https://198.18.0.99/evil.git'}\n"
    commit(work, "state/fleet.yaml", moved)
    git(work, "push", "-q", "origin", "main")
    with pytest.raises(SpecError) as info:
        fetch_state(source, tmp_path / "controller")
    [problem] = info.value.problems
    assert problem.path == "source" and "cannot move the controller" in problem.message
    assert problem.line is not None


def test_watch_follows_the_branch_keeps_the_last_good_and_says_a_rewrite(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    from reconciler.daemon.spec_source import SpecSource
    from reconciler.events.bus import Event, EventBus
    from reconciler.store.journal import Journal

    bare, work = forge
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(BASE + f"source: {{url: 'file://{bare}', interval: 5s}}\n")
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    journal = Journal(tmp_path / "controller" / "journal.db")
    spec = SpecSource(bootstrap, bus, journal)
    first = commit(work, "state/fleet.yaml", BASE)
    git(work, "push", "-q", "origin", "main")
    assert spec.reload() and spec.loaded is not None and spec.loaded.commit == first
    assert spec.source is not None and spec.source.interval.total_seconds() == 5
    assert not spec.reload()  # the same commit: nothing new in force
    commit(work, "state/fleet.yaml", "version: [broken")
    git(work, "push", "-q", "origin", "main")
    assert not spec.reload() and spec.loaded.commit == first  # the last good stays
    assert events[-1].kind == "spec_rejected"
    broken = git(work, "rev-parse", "HEAD")
    assert f"state/fleet.yaml@{broken[:12]}:1: " in events[-1].message  # not our tree's path
    assert str(tmp_path) not in events[-1].message
    git(work, "reset", "-q", "--hard", first)
    fixed = commit(work, "state/fleet.yaml", BASE.replace("version: 1", "version: 1  # fixed"))
    git(work, "push", "-q", "--force", "origin", "main")
    assert spec.reload() and spec.loaded is not None and spec.loaded.commit == fixed
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["history_rewritten", "spec_applied"], kinds
    assert events[-1].context["git_commit"] == fixed


def test_status_the_page_and_metrics_name_the_commit_in_force(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.testclient import TestClient

    from reconciler.render.status_text import loop_lines
    from reconciler.store.journal import Journal
    from reconciler.web.app import make_app

    state = tmp_path / "bootstrap.yaml"
    journal = Journal(tmp_path / "journal.db")
    commit_id = "4f" * 20
    journal.save_loop_state(
        str(state.resolve()),
        {"last_pass": 1.0, "spec_commit": commit_id, "source": "file:///srv/fleet.git main"},
    )
    assert f"loop: spec in force: commit {commit_id[:12]} of file:///srv/fleet.git main" in (
        loop_lines(journal, state, None)
    )
    journal.close()
    client = TestClient(
        make_app(tmp_path / "journal.db", state.resolve(), lambda: None, CollectorRegistry())
    )
    assert f"<code>{commit_id[:12]}</code> of file:///srv/fleet.git main" in client.get("/").text
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    [sample] = families["fleet_reconciler_spec_commit_info"].samples
    assert sample.labels == {"source": "file:///srv/fleet.git main", "commit": commit_id}


def test_commands_use_the_fetched_commit_and_a_review_the_file_given(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    from reconciler.forge.source import desired_state

    bare, work = forge
    head = commit(work, "state/fleet.yaml", BASE.replace("version: 1", "version: 1  # fetched"))
    git(work, "push", "-q", "origin", "main")
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(BASE + f"source: {{url: 'file://{bare}'}}\n")
    loaded = desired_state(bootstrap, tmp_path / "controller" / "journal.db")
    assert loaded.commit == head and "# fetched" in loaded.text
    plain = tmp_path / "plain.yaml"
    plain.write_text(BASE)
    assert desired_state(plain, tmp_path / "controller" / "journal.db").commit is None


def test_a_commit_names_only_its_own_files(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    """An install source outside the commit's tree (a path on the controller) is refused,
    with the same words whether or not the file exists: the commit is the whole state."""
    import hashlib

    bare, work = forge
    outside = tmp_path / "on-the-controller"
    outside.write_bytes(b"#!/bin/sh\n")
    digest = hashlib.sha256(b"#!/bin/sh\n").hexdigest()
    install = "    install: {{kind: file, source: {src}, sha256: {sha}, dest: /usr/local/bin/x}}\n"
    service = "  x:\n    host: kimi\n" + install  # after BASE's services
    commit(work, "state/bin/x", "#!/bin/sh\n")
    commit(work, "state/fleet.yaml", BASE + service.format(src=outside, sha=digest))
    git(work, "push", "-q", "origin", "main")
    source = GitSource(url=f"file://{bare}")
    with pytest.raises(SpecError) as info:
        fetch_state(source, tmp_path / "controller")
    [problem] = info.value.problems
    assert problem.path == "services.x.install.source"
    assert "not in the commit's tree" in problem.message and digest not in problem.message
    inside = commit(work, "state/fleet.yaml", BASE + service.format(src="bin/x", sha=digest))
    git(work, "push", "-q", "origin", "main")
    got = fetch_state(source, tmp_path / "controller")
    assert got.fetched.commit == inside
    assert got.loaded.resolve("bin/x").read_bytes() == b"#!/bin/sh\n"


def test_a_pinned_commit_holds_whatever_the_branch_does_until_unpinned(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    from reconciler.forge.errors import SourceRefused
    from reconciler.forge.source import pin, unpin

    bare, work = forge
    source = GitSource(url=f"file://{bare}")
    controller = tmp_path / "controller"
    old = commit(work, "state/fleet.yaml", BASE.replace("version: 1", "version: 1  # old"))
    git(work, "push", "-q", "origin", "main")
    fetch_state(source, controller)
    new = commit(work, "state/fleet.yaml", BASE.replace("version: 1", "version: 1  # new"))
    git(work, "push", "-q", "origin", "main")
    assert fetch_state(source, controller).commit == new
    pinned = pin(source, controller, old[:8])
    assert pinned.commit == old and pinned.fetched.commit == new
    newer = commit(work, "state/fleet.yaml", BASE.replace("version: 1", "version: 1  # newer"))
    git(work, "push", "-q", "origin", "main")
    got = fetch_state(source, controller)
    assert (got.commit, got.pinned, got.fetched.commit) == (old, True, newer)
    assert "# old" in got.loaded.text
    broken = commit(work, "state/fleet.yaml", "version: [broken")
    git(work, "push", "-q", "origin", "main")
    with pytest.raises(SpecError):
        pin(source, controller, broken)  # a commit that does not load is never pinned
    with pytest.raises(SourceRefused):
        pin(source, controller, "0123456789abcdef")
    assert fetch_state(source, controller).commit == old  # the pin stands
    assert unpin(source, controller) == old and unpin(source, controller) is None
    with pytest.raises(SpecError):
        fetch_state(source, controller)  # the tip again, which is broken


def test_a_long_plan_is_split_in_marked_parts_each_an_inert_code_block() -> None:
    from reconciler.flows.review import MARKER, PART_LIMIT, Review, comment_parts

    text = "".join(
        f"+ config /etc/x{i} ```](http://198.18.0.99/steal) @admin\n" for i in range(3000)
    )
    parts = comment_parts(Review(7, "ab" * 20, "pending", "3000 change(s) planned", text))
    assert len(parts) > 1 and all(len(p) <= PART_LIMIT for p in parts)
    for i, part in enumerate(parts):
        assert part.startswith(f"{MARKER} part {i + 1}/{len(parts)} -->\n")
        assert "````text\n" in part and part.endswith("\n````")  # longer than any run inside
    assert sum(p.count("+ config /etc/x") for p in parts) == 3000  # nothing lost
    [one] = comment_parts(Review(7, "ab" * 20, "success", "no changes", "No changes.\n"))
    assert "(part" not in one and "`abababababab`: success, no changes" in one


def test_the_page_says_pinned_and_suspended(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry
    from starlette.testclient import TestClient

    from reconciler.render.status_text import loop_lines
    from reconciler.store.journal import Journal
    from reconciler.store.memory import LocalMemory
    from reconciler.store.suspension import Suspension
    from reconciler.web.app import make_app

    state = tmp_path / "bootstrap.yaml"
    journal = Journal(tmp_path / "journal.db")
    journal.save_loop_state(
        str(state.resolve()),
        {"spec_commit": "4f" * 20, "source": "file:///srv/fleet.git main", "pinned": True,
         "branch_tip": "9e" * 20},
    )  # fmt: skip
    suspended = Suspension(LocalMemory(journal)).suspend("maintenance")
    lines = "\n".join(loop_lines(journal, state, suspended))
    assert "(PINNED by `reconcile pin`; the branch is at 9e9e9e9e9e9e" in lines
    assert "applying SUSPENDED since" in lines and "(maintenance)" in lines
    journal.close()
    page = (
        TestClient(
            make_app(tmp_path / "journal.db", state.resolve(), lambda: None, CollectorRegistry())
        )
        .get("/")
        .text
    )
    assert 'id="pinned">PINNED' in page and 'id="suspended">applying SUSPENDED' in page
    assert Suspension(LocalMemory(Journal(tmp_path / "journal.db"))).resume() is not None


def test_a_restart_while_the_forge_is_down_runs_on_the_commit_last_in_force(
    forge: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    from reconciler.daemon.spec_source import SpecSource
    from reconciler.events.bus import EventBus
    from reconciler.store.journal import Journal

    bare, work = forge
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(BASE + f"source: {{url: 'file://{bare}'}}\n")
    journal = Journal(tmp_path / "controller" / "journal.db")
    first = commit(work, "state/fleet.yaml", BASE)
    git(work, "push", "-q", "origin", "main")
    assert SpecSource(bootstrap, EventBus(), journal).reload()
    bare.rename(tmp_path / "gone.git")  # the forge is down
    restarted = SpecSource(bootstrap, EventBus(), journal)
    assert restarted.reload() and restarted.loaded is not None
    assert restarted.loaded.commit == first
    assert restarted.error is not None and "source" in restarted.error  # and it says so
