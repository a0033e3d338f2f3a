"""The fleet's memory: one contract, run against both backends (the journal's SQLite and
a real etcd, Debian's etcd-server on a loopback port), and what each adds: etcd's
fenced writes, the journal's move of an older suspension table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.coordination.etcd import EtcdClient
from reconciler.coordination.etcd_memory import EtcdMemory, memory_for
from reconciler.forge.errors import SourceRefused
from reconciler.forge.source import fetch_state, pin, put_in_force, unpin
from reconciler.store.journal import Journal
from reconciler.store.memory import (
    MAX_VALUE_BYTES,
    Deposed,
    LocalMemory,
    Memory,
    MemoryRefused,
    MemoryUnavailable,
)
from reconciler.store.suspension import KEY, Suspension
from state.spec.controller import LocalCoordination
from state.spec.source import GitSource
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.unit.test_git_mirror import commit, forge, git  # noqa: F401 (the fixture)
from tests.unit.test_spec import BASE


@pytest.fixture(scope="module")
def etcd() -> Iterator[Cluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


@pytest.fixture(params=["journal", "etcd"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    if request.param == "journal":
        yield LocalMemory(Journal(tmp_path / "journal.db"))
        return
    cluster: Cluster = request.getfixturevalue("etcd")
    client = EtcdClient(cluster.endpoints, timeout=5.0)
    yield EtcdMemory(client, f"/t-{tmp_path.name}")
    client.close()


def test_a_key_is_read_as_written_replaced_and_deleted(memory: Memory) -> None:
    assert memory.get("intent/x") is None
    memory.put("intent/x", '{"a": 1}')
    assert memory.get("intent/x") == '{"a": 1}'
    memory.put("intent/x", '{"a": 2}')
    assert memory.get("intent/x") == '{"a": 2}'
    assert memory.delete("intent/x") is True
    assert memory.delete("intent/x") is False
    assert memory.get("intent/x") is None


def test_items_are_those_under_the_prefix_alone(memory: Memory) -> None:
    memory.put("outbox/a", "1")
    memory.put("outbox/b", "2")
    memory.put("outboxes/c", "3")  # shares the letters, not the folder
    memory.put("intent/d", "4")
    assert memory.items("outbox") == {"outbox/a": "1", "outbox/b": "2"}


@pytest.mark.parametrize("key", ["", "Intent/x", "intent", "intent/", "../x", "intent/a b"])
def test_a_key_outside_the_grammar_is_refused_before_anything_is_read(
    memory: Memory, key: str
) -> None:
    with pytest.raises(MemoryRefused):
        memory.get(key)
    with pytest.raises(MemoryRefused):
        memory.put(key, "{}")


def test_a_value_over_the_bound_is_refused(memory: Memory) -> None:
    with pytest.raises(MemoryRefused):
        memory.put("intent/big", "x" * (MAX_VALUE_BYTES + 1))
    assert memory.get("intent/big") is None


def test_a_suspension_is_kept_as_first_made_and_resume_says_what_was_in_force(
    memory: Memory,
) -> None:
    suspension = Suspension(memory)
    assert suspension.get() is None
    first = suspension.suspend("maintenance")
    assert suspension.suspend("another reason") == first
    assert Suspension(memory).get() == first  # another controller reads the same
    assert suspension.resume() == first
    assert suspension.get() is None and suspension.resume() is None


def test_an_unreadable_suspension_record_counts_as_suspended(memory: Memory) -> None:
    memory.put(KEY, "not json")
    found = Suspension(memory).get()
    assert found is not None and "cannot be read" in found.reason


def test_a_leaders_write_holds_only_while_its_token_does(etcd: Cluster, tmp_path: Path) -> None:
    client = EtcdClient(etcd.endpoints, timeout=5.0)
    prefix = f"/f-{tmp_path.name}"
    guard = f"{prefix}/leader"
    client.put(guard, b"c1")
    created = client.get(guard)
    assert created is not None
    held = (guard, created.create_revision)
    leader = EtcdMemory(client, prefix, fence=lambda: held)
    leader.put("outbox/a", "1")
    assert leader.delete("outbox/a") is True
    client.delete(guard)
    client.put(guard, b"c2")  # another controller's key: a new create revision
    with pytest.raises(Deposed):
        leader.put("outbox/b", "2")
    with pytest.raises(Deposed):
        leader.delete("outbox/a")
    assert EtcdMemory(client, prefix).get("outbox/b") is None
    without = EtcdMemory(client, prefix, fence=lambda: (guard, None))
    with pytest.raises(Deposed):
        without.put("outbox/c", "3")
    client.close()


def test_an_unreachable_etcd_is_unavailable_not_empty(tmp_path: Path) -> None:
    from tests.fleet.ports import free_port

    client = EtcdClient([f"http://127.0.0.1:{free_port()}"], timeout=1.0)
    memory = EtcdMemory(client, "/nowhere")
    with pytest.raises(MemoryUnavailable):
        Suspension(memory).get()  # unknown is not "not suspended"
    client.close()


def test_the_journal_moves_an_older_suspension_into_the_memory_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    journal.db.executescript(
        "CREATE TABLE suspension (id INTEGER PRIMARY KEY CHECK (id = 1), since REAL NOT NULL,"
        " reason TEXT NOT NULL);"
        "INSERT INTO suspension VALUES (1, 1800000000.0, 'maintenance');"
    )
    moved = memory_for(LocalCoordination(kind="local"), journal)
    found = Suspension(moved).get()
    assert found is not None and (found.since, found.reason) == (1800000000.0, "maintenance")
    tables = {r[0] for r in journal.db.execute("SELECT name FROM sqlite_master")}
    assert "suspension" not in tables
    assert json.loads(moved.get(KEY) or "{}")["reason"] == "maintenance"
    assert Suspension(memory_for(LocalCoordination(kind="local"), journal)).get() == found  # once


def test_a_pin_and_the_commit_in_force_are_every_controllers(
    forge: tuple[Path, Path],  # noqa: F811
    etcd: Cluster,
    tmp_path: Path,
) -> None:
    """Controllers a and b, each with its own mirror, on one etcd: a pin made through a
    holds on b; the commit in force a recorded is the one b moves forward from."""
    bare, work = forge
    source = GitSource(url=f"file://{bare}")
    client = EtcdClient(etcd.endpoints, timeout=5.0)
    memory = EtcdMemory(client, f"/holds-{tmp_path.name}")
    old = commit(work, "state/fleet.yaml", BASE.replace("version: 1", "version: 1  # old"))
    git(work, "push", "-q", "origin", "main")
    assert fetch_state(source, tmp_path / "a", memory).commit == old
    new = commit(work, "state/fleet.yaml", BASE.replace("version: 1", "version: 1  # new"))
    git(work, "push", "-q", "origin", "main")
    pin(source, tmp_path / "a", old[:8], memory)
    got = fetch_state(source, tmp_path / "b", memory)  # b never saw the pin made
    assert (got.commit, got.pinned) == (old, True)
    assert unpin(source, tmp_path / "b", memory) == old
    assert fetch_state(source, tmp_path / "a", memory).commit == new

    put_in_force(source, tmp_path / "a", new, memory)
    git(work, "push", "-q", "--force", "origin", f"{old}:main")  # back to before
    got = fetch_state(source, tmp_path / "b", memory)
    assert (got.commit, got.held) == (new, old)  # b holds the rewind, as a would
    client.close()


def test_a_mirror_moves_its_own_holds_into_an_empty_memory_once(
    forge: tuple[Path, Path],  # noqa: F811
    etcd: Cluster,
    tmp_path: Path,
) -> None:
    bare, work = forge
    source = GitSource(url=f"file://{bare}")
    first = commit(work, "state/fleet.yaml", BASE)
    git(work, "push", "-q", "origin", "main")
    pin(source, tmp_path / "a", first[:8])  # one controller, before etcd: a ref
    client = EtcdClient(etcd.endpoints, timeout=5.0)
    memory = EtcdMemory(client, f"/moved-{tmp_path.name}")
    assert fetch_state(source, tmp_path / "a", memory).pinned
    assert memory.get("source/pinned") == first
    memory.put("source/pinned", "not a commit")
    with pytest.raises(SourceRefused, match="expected a commit ID"):
        fetch_state(source, tmp_path / "a", memory)
    client.close()
