"""Several controllers, one leader, on a real 3-member etcd cluster (Debian's
etcd-server on loopback ports) and, for fencing, real lab hosts. Nothing is mocked."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from reconciler.coordination.leader import EtcdLeadership, NotLeader, who_leads
from reconciler.hosts.client import WarmWorker
from reconciler.hosts.fencing import claim_token, refused
from state.load import parse_fleet
from state.spec.controller import EtcdCoordination
from tests.fleet import lab as fleet_lab
from tests.fleet.etcd_cluster import Cluster, etcd_cluster
from tests.integration.conftest import ROOT, lab_spec, run_reconcile

TTL, RETRY = 4, 1


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with etcd_cluster(3) as started:
        yield started


def leadership(cluster: Cluster, name: str, prefix: str) -> EtcdLeadership:
    settings = EtcdCoordination(
        kind="etcd",
        endpoints=cluster.endpoints,
        prefix=prefix,
        ttl=timedelta(seconds=TTL),
        retry_timeout=timedelta(seconds=RETRY),
    )
    return EtcdLeadership(settings, name, lambda _line: None)


def until(check: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


def test_one_leader_and_a_takeover_within_the_ttl(cluster: Cluster) -> None:
    a, b = leadership(cluster, "a", "/t1"), leadership(cluster, "b", "/t1")
    try:
        assert a.campaign() and a.token is not None
        assert not b.campaign() and b.why_not().startswith("a leads since")
        # a dies without a word: its keep-alives stop (as under SIGKILL), its key stays
        # until the lease runs out; then b is elected with a higher token.
        a.stop.set()
        until(lambda: b.campaign(), TTL + 20)  # how soon is bench/leader.py's to measure
        assert b.token is not None and b.token > a.token
        # a, back, is no longer acting and cannot write shared state with its old token.
        assert not a.acting()
        assert not a.client.put_if_created_at(a.leader_key, a.token, "/t1/shared/x", b"old")
        assert b.shared_put("x", "new") and b.shared_get("x") == "new"
    finally:
        a.client.close()
        b.close()


def test_a_clean_exit_hands_over_at_once(cluster: Cluster) -> None:
    a, b = leadership(cluster, "a", "/t2"), leadership(cluster, "b", "/t2")
    try:
        assert a.campaign()
        a.close()
        assert b.campaign(), b.why_not()
    finally:
        b.close()


def test_quorum_lost_nobody_acts_and_work_resumes_when_it_is_back(cluster: Cluster) -> None:
    a, b = leadership(cluster, "a", "/t3"), leadership(cluster, "b", "/t3")
    try:
        assert a.campaign()
        for member in cluster.members[1:]:
            cluster.stop(member)
        # The keep-alive thread's renewals fail; the leader stops acting once its last
        # confirmed renewal is ttl - retry_timeout old: before its lease (ttl) can expire
        # and anyone else could be elected.
        until(lambda: not a.acting(), 4 * TTL)
        age = time.monotonic() - a.renewed
        assert TTL - RETRY - 0.2 <= age < TTL, age
        assert not b.campaign() and not a.campaign()
        assert "no endpoint answered" in a.why_not() or "stepped down" in a.why_not()
        for member in cluster.members[1:]:
            cluster.restart(member)
        cluster.healthy()
        until(lambda: a.campaign() or b.campaign(), 3 * TTL)
        assert a.acting() != b.acting()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("over", ["ssh", "worker"])
def test_a_host_refuses_a_lower_fencing_token_and_logs_each_accepted_one(
    lab: fleet_lab.Lab, over: str
) -> None:
    """Claimed by a one-shot `ssh`, or over the daemon's worker and its kept connection."""
    fleet = parse_fleet(lab_spec(lab), Path("state/test.yaml")).fleet
    h1 = {"h1": fleet.hosts["h1"]}
    fleet_lab.ssh(lab, "h1", "rm -f /var/lib/fleet-reconciler/fence/controller*")
    worker = WarmWorker() if over == "worker" else None
    try:
        assert claim_token(h1, 7, "c1", worker)["h1"].ok
        assert claim_token(h1, 7, "c1", worker)["h1"].ok  # the same leader again
        lower = claim_token(h1, 6, "c0", worker)["h1"]
        assert refused(lower), lower
        assert claim_token(h1, 9, "c2", worker)["h1"].ok
        if worker is not None:
            assert worker.starts == 1  # one worker answered all four
    finally:
        if worker is not None:
            worker.close()
    log = fleet_lab.ssh(lab, "h1", "cat /var/lib/fleet-reconciler/fence/controller.log")
    assert [line.split()[1:] for line in log.splitlines()] == [
        ["7", "c1"],
        ["7", "c1"],
        ["9", "c2"],
    ]


def coordinated_spec(lab: fleet_lab.Lab, cluster: Cluster, prefix: str, shards: int = 1) -> str:
    endpoints = ", ".join(cluster.endpoints)
    return lab_spec(lab) + (
        "reconciler:\n  interval: 30s\n  probe_interval: 1s\n  backoff_initial: 1s\n"
        f"  coordination: {{kind: etcd, endpoints: [{endpoints}], prefix: {prefix}, "
        f"ttl: {TTL}s, retry_timeout: {RETRY}s, shards: {shards}}}\n"
    )


def controller(name: str, spec: Path, tmp: Path) -> subprocess.Popen[bytes]:
    """`reconcile watch` as controller NAME, with its own journal; output to NAME.log."""
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable, "-m", "reconciler.cli", "watch", str(spec),
            "--journal", str(tmp / name / "journal.db"), "--controller", name,
            "--max-seconds", "300",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_controllers(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """Every controller asked to stop (a paused one woken first), then waited for."""
    for proc in procs.values():
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
    for proc in procs.values():
        proc.wait(timeout=60)


def leader(settings: EtcdCoordination) -> str | None:
    holder = who_leads(settings).holder
    return holder.name if holder else None


def ollama_healthy(lab: fleet_lab.Lab) -> bool:
    try:
        url = f"http://{lab.host('h2').address}:11434/api/tags"
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def tokens(lab: fleet_lab.Lab, host: str) -> list[int]:
    log = fleet_lab.ssh(
        lab, host, "cat /var/lib/fleet-reconciler/fence/controller.log 2>/dev/null || true"
    )
    return [int(line.split()[1]) for line in log.splitlines()]


def test_controllers_one_leads_a_dead_one_is_replaced_and_a_paused_one_steps_down(
    lab: fleet_lab.Lab, cluster: Cluster, tmp_path: Path
) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(coordinated_spec(lab, cluster, "/lab"))
    settings = parse_fleet(spec.read_text(), spec).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    for host in ("h1", "h2"):
        fleet_lab.ssh(lab, host, "rm -f /var/lib/fleet-reconciler/fence/controller*")
    # A person's one-shot apply takes the leadership for its run and gives it back.
    done = run_reconcile("--yes", str(spec), "--journal", str(tmp_path / "cli" / "j.db"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert leader(settings) is None

    procs = {"c1": controller("c1", spec, tmp_path)}
    try:
        until(lambda: leader(settings) == "c1", 30)
        procs["c2"] = controller("c2", spec, tmp_path)
        until(lambda: "standing by: c1 leads" in (tmp_path / "c2.log").read_text(), 30)
        # While c1 leads, a one-shot apply waits, then refuses, naming the holder.
        refused_run = run_reconcile(
            "--yes", str(spec), "--journal", str(tmp_path / "cli" / "j.db"), "--lock-timeout", "2"
        )
        assert refused_run.returncode == 1 and "c1 leads since" in refused_run.stderr

        # SIGKILL the leader: c2 takes over within the ttl and a probe pass, and heals.
        procs["c1"].kill()
        until(lambda: leader(settings) == "c2", TTL + 30)  # bench/leader.py: how soon
        fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")
        until(lambda: ollama_healthy(lab), 60)

        # SIGSTOP c2 past its ttl: c3 is elected and writes to the hosts with a newer
        # token; c2, woken, finds its lease gone and steps down without writing.
        procs["c2"].send_signal(signal.SIGSTOP)
        procs["c3"] = controller("c3", spec, tmp_path)
        until(lambda: leader(settings) == "c3", 3 * TTL + 10)
        fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")
        until(lambda: ollama_healthy(lab), 60)
        procs["c2"].send_signal(signal.SIGCONT)
        until(lambda: "c2 steps down" in (tmp_path / "c2.log").read_text(), 20)
        time.sleep(3)
        assert leader(settings) == "c3"
        status = run_reconcile("status", str(spec), "--journal", str(tmp_path / "c3/journal.db"))
        assert "leader c3 since" in status.stdout, status.stdout + status.stderr
        sha = parse_fleet(spec.read_text(), spec).sha256
        assert f"spec in force (the leader's last pass): {sha[:12]}" in status.stdout
    finally:
        stop_controllers(procs)
    # The hosts' own logs: the tokens they accepted never went down.
    h2 = tokens(lab, "h2")
    assert h2 and h2 == sorted(h2), h2
    assert len(set(h2)) >= 2, h2  # c2's and c3's heals, each with its own token


def test_the_failover_state_a_leader_leaves_is_the_next_leaders(
    lab: fleet_lab.Lab, cluster: Cluster, tmp_path: Path
) -> None:
    from reconciler.coordination.guard import pull_shared, push_shared
    from reconciler.store.failover_state import FailoverState, FailoverStore
    from reconciler.store.journal import Journal
    from state.placement import Placement
    from tests.integration.conftest import failover_spec

    loaded = parse_fleet(failover_spec(lab), tmp_path / "fleet.yaml")
    failover = loaded.written.failover
    assert failover is not None
    a, b, c = (leadership(cluster, n, "/t4") for n in ("a", "b", "c"))
    try:
        assert a.campaign()
        journal_a = Journal(tmp_path / "a.db")
        moved = FailoverState(placement=Placement(active="h2", epoch=3), reason="h1 lost")
        FailoverStore(journal_a, failover).put(moved)
        push_shared(a, journal_a, loaded)
        a.close()
        assert b.campaign()
        journal_b = Journal(tmp_path / "b.db")
        assert pull_shared(b, journal_b, loaded) == (
            "failover state from the last leader: h2 active, epoch 3"
        )
        assert FailoverStore(journal_b, failover).get() == moved
        # Only the leader writes it: another controller's write is not taken.
        assert not c.campaign() and not c.shared_put("failover/h1->h2", "{}")
        assert b.shared_get("failover/h1->h2") == moved.model_dump_json()
    finally:
        for each in (b, c):
            each.close()


def test_shards_are_shared_out_fairly_and_a_one_shot_run_needs_every_one(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Leadership objects alone on the real cluster: each controller takes up to its fair
    share, one with more gives the extra up, shared state is written per shard with its
    token, a dead controller's shards go to the living, and a one-shot run takes all the
    shards or none without being counted among the controllers."""
    from reconciler.coordination.sharded import ShardedLeadership
    from state.shards import shard_view
    from tests.unit.test_shards import fleet_text

    settings = EtcdCoordination(
        kind="etcd", endpoints=cluster.endpoints, prefix="/t5", shards=4,
        ttl=timedelta(seconds=TTL), retry_timeout=timedelta(seconds=RETRY),
    )  # fmt: skip
    said: list[str] = []
    a, b = (ShardedLeadership(settings, n, said.append) for n in ("a", "b"))
    one = ShardedLeadership(settings, "one", said.append, every=True)
    loaded = parse_fleet(fleet_text(8), tmp_path / "fleet.yaml")
    a.follow(shard_view(loaded, {"h1"}))  # a share first: the whole fleet still counts
    shards = a.follow(loaded)
    assert sorted(shards) == sorted(loaded.fleet.hosts)
    b.follow(loaded)
    still_open = [b, one]
    try:
        assert a.campaign() and sorted(a.held) == [0, 1, 2, 3]  # alone: every shard
        assert a.regrouped() and not a.kept
        assert not b.campaign() and b.why_not().startswith("led by others (shard ")
        assert not one.campaign() and not one.held  # all or none
        assert a.campaign() and sorted(a.held) == [0, 1]  # two controllers: two each
        assert a.regrouped() and a.kept == {0, 1}
        assert "a gives up shard 3" in " ".join(said)
        assert b.campaign() and sorted(b.held) == [2, 3]
        assert min(b.held.values()) > max(a.held.values())  # etcd revisions only grow
        assert a.campaign() and b.campaign() and len(a.held) == len(b.held) == 2  # stable
        host_a = next(h for h, k in shards.items() if k in a.held)
        host_b = next(h for h, k in shards.items() if k in b.held)
        assert a.shared_put("x", "from a", host_a) and not a.shared_put("x", "no", host_b)
        assert b.shared_get("x", host_a) == "from a"
        assert a.shared_get("x", host_a) is None  # led all along: a's journal is newer
        assert a.tokens_for(loaded, [host_a]) == {a.held[shards[host_a]]: [host_a]}
        with pytest.raises(NotLeader, match="another controller leads"):
            a.tokens_for(loaded, [host_b])
        a.stop.set()  # a dies without a word: its lease runs out, b takes its shards
        until(lambda: b.campaign() and len(b.held) == 4, TTL + 20)
        b.close()  # a clean exit frees its shards at once
        still_open.remove(b)
        assert one.campaign() and sorted(one.held) == [0, 1, 2, 3]
        assert one.tokens_for(loaded, sorted(shards))  # a token for every host
    finally:
        a.client.close()
        for each in still_open:
            each.close()


def shard_leaders(settings: EtcdCoordination) -> list[str | None]:
    return [s.holder.name if s.holder else None for s in who_leads(settings).shards]


def agent_healthy(lab: fleet_lab.Lab) -> bool:
    return fleet_lab.ssh(lab, "h1", "systemctl is-active agent.service", check=False).strip() == (
        "active"
    )


def test_sharded_controllers_share_the_hosts_and_a_dead_ones_shard_is_taken_over(
    lab: fleet_lab.Lab, cluster: Cluster, tmp_path: Path
) -> None:
    """`shards: 2` puts h1 in shard 1 and h2 in shard 0 (state.shards; the unit tests pin
    it). c1 alone leads both; c2 joins and c1 gives one up; each heals only its own
    host; c1 SIGKILLed, c2 takes its shard within the ttl and heals there too."""
    from state.shards import shard_map

    spec = tmp_path / "fleet.yaml"
    spec.write_text(coordinated_spec(lab, cluster, "/sharded", shards=2))
    loaded = parse_fleet(spec.read_text(), spec)
    settings = loaded.fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    assert shard_map(loaded.fleet, 2) == {"h1": 1, "h2": 0}
    for host in ("h1", "h2"):
        fleet_lab.ssh(lab, host, "rm -f /var/lib/fleet-reconciler/fence/controller*")
    procs = {"c1": controller("c1", spec, tmp_path)}
    logs = {name: tmp_path / f"{name}.log" for name in ("c1", "c2")}
    try:
        until(lambda: shard_leaders(settings) == ["c1", "c1"], 30)
        procs["c2"] = controller("c2", spec, tmp_path)
        until(lambda: sorted(map(str, shard_leaders(settings))) == ["c1", "c2"], 30)
        owner = dict(enumerate(shard_leaders(settings)))
        of_h1, of_h2 = owner[1], owner[0]
        assert "c1 gives up shard" in logs["c1"].read_text()  # it led both

        # A one-shot apply needs every shard: it waits, then refuses, naming the holders.
        refused_run = run_reconcile(
            "--yes", str(spec), "--journal", str(tmp_path / "cli" / "j.db"), "--lock-timeout", "2"
        )
        assert refused_run.returncode == 1, refused_run.stdout + refused_run.stderr
        assert "led by others (shard 0:" in refused_run.stderr, refused_run.stderr

        # Each controller heals the host of its own shard, and only that one.
        fleet_lab.ssh(lab, "h1", "systemctl stop agent.service")
        fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")
        until(lambda: agent_healthy(lab) and ollama_healthy(lab), 60)
        assert "drift on h1" in logs[str(of_h1)].read_text()
        assert "drift on h2" in logs[str(of_h2)].read_text()
        for name, host in ((of_h1, "h2"), (of_h2, "h1")):
            assert f"drift on {host}" not in logs[str(name)].read_text(), name
        status = run_reconcile("status", str(spec), "--journal", str(tmp_path / "c1/journal.db"))
        assert f"shard 1 (h1): leader {of_h1} since" in status.stdout, status.stdout
        assert f"shard 0 (h2): leader {of_h2} since" in status.stdout, status.stdout

        # c1 dies without a word: c2 takes its shard once c1's lease runs out, and heals
        # the host there.
        procs["c1"].kill()
        until(lambda: shard_leaders(settings) == ["c2", "c2"], TTL + 30)
        lost = "h1" if of_h1 == "c1" else "h2"
        if lost == "h1":
            fleet_lab.ssh(lab, "h1", "systemctl stop agent.service")
            until(lambda: agent_healthy(lab), 60)
        else:
            fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")
            until(lambda: ollama_healthy(lab), 60)
        # Found by a probe ("drift on") or by the full pass c2 runs over its new shard.
        healed = logs["c2"].read_text()
        assert f"drift on {lost}" in healed or f"{lost}: starting " in healed, healed
    finally:
        stop_controllers(procs)
    # The hosts' logs: tokens never went down; h of c1's shard saw c2's newer token.
    for host in ("h1", "h2"):
        accepted = tokens(lab, host)
        assert accepted and accepted == sorted(accepted), (host, accepted)
    assert len(set(tokens(lab, lost))) >= 2


def host_log(lab: fleet_lab.Lab, host: str) -> list[tuple[float, int, str]]:
    """The host's own record of accepted applies: (host time, token, controller)."""
    text = fleet_lab.ssh(
        lab, host, "cat /var/lib/fleet-reconciler/fence/controller.log 2>/dev/null || true"
    )
    return [(float(t), int(k), n) for t, k, n in (line.split() for line in text.splitlines())]


def test_a_leader_cut_off_from_etcd_stops_before_the_next_starts_by_the_hosts_logs(
    lab: fleet_lab.Lab, cluster: Cluster, tmp_path: Path
) -> None:
    """c1 reaches etcd through proxies that the test cuts, while it still reaches the
    hosts; c2 reaches etcd directly. A fault is injected every 1.5 s so that whoever
    leads keeps writing to h2. Then 2 of 3 members stop: nobody applies."""
    import threading

    from tests.fleet.tcp_proxy import proxies

    for host in ("h1", "h2"):
        fleet_lab.ssh(lab, host, "rm -f /var/lib/fleet-reconciler/fence/controller*")
    direct = tmp_path / "direct.yaml"
    direct.write_text(coordinated_spec(lab, cluster, "/lab2"))
    settings = parse_fleet(direct.read_text(), direct).fleet.reconciler.coordination
    assert isinstance(settings, EtcdCoordination)
    stop_faults = threading.Event()

    def faults() -> None:
        while not stop_faults.wait(1.5):
            fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")

    with proxies([m.client_port for m in cluster.members]) as cut:
        proxied = tmp_path / "proxied.yaml"
        text = direct.read_text()
        for member, proxy in zip(cluster.members, cut, strict=True):
            text = text.replace(member.url, proxy.url)
        proxied.write_text(text)
        procs = {"c1": controller("c1", proxied, tmp_path)}
        injector = threading.Thread(target=faults, daemon=True)
        try:
            until(lambda: leader(settings) == "c1", 30)
            procs["c2"] = controller("c2", direct, tmp_path)
            until(lambda: "standing by: c1 leads" in (tmp_path / "c2.log").read_text(), 30)
            injector.start()
            until(lambda: any(n == "c1" for _at, _k, n in host_log(lab, "h2")), 60)
            for proxy in cut:
                proxy.partition()
            until(lambda: leader(settings) == "c2", 3 * TTL)
            time.sleep(6)  # c2 heals the injected faults for a while
            stop_faults.set()
            injector.join()
            until(lambda: ollama_healthy(lab), 60)

            # Quorum lost: nobody applies, status says why; work resumes after.
            for member in cluster.members[1:]:
                cluster.stop(member)
            time.sleep(TTL)
            fleet_lab.ssh(lab, "h2", "systemctl stop ollama.service")
            status = run_reconcile("status", str(direct), "--journal", str(tmp_path / "s.db"))
            assert "etcd unreachable, nobody applies" in status.stdout, status.stdout
            time.sleep(5)
            assert not ollama_healthy(lab)
            for member in cluster.members[1:]:
                cluster.restart(member)
            cluster.healthy()
            until(lambda: ollama_healthy(lab), 90)
        finally:
            stop_faults.set()
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(timeout=60)
    entries = host_log(lab, "h2")
    by_c1 = [at for at, _token, name in entries if name == "c1"]
    by_c2 = [at for at, _token, name in entries if name == "c2"]
    assert by_c1 and by_c2, entries
    assert max(by_c1) < min(by_c2), entries  # no interleaving: c1 stopped before c2 began
    tokens_seen = [token for _at, token, _name in entries]
    assert tokens_seen == sorted(tokens_seen), entries
    c1_log = (tmp_path / "c1.log").read_text()
    assert "standing by: etcd: no endpoint answered" in c1_log or "c1 steps down" in c1_log
