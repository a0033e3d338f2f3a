"""The light probes' round: slices of the fleet spread over probe_interval."""

from __future__ import annotations

from reconciler.daemon.probe_round import MOST_SLICES, SLICE_HOSTS, ProbeRound, probe_slices


def test_a_small_fleet_is_one_slice_read_once_per_interval() -> None:
    assert probe_slices(["b", "a"]) == [frozenset({"a", "b"})]
    assert probe_slices([]) == [frozenset()]
    probes = ProbeRound()
    probes.begin(["a", "b"], None)
    assert probes.step(2.0) == 2.0
    assert probes.advance(0.01, failed=False)  # the one slice ends the round


def test_a_large_fleet_is_cut_into_even_slices_that_cover_every_host_once() -> None:
    hosts = [f"h{i}" for i in range(1, 65)]
    slices = probe_slices(hosts)
    assert len(slices) == 64 // SLICE_HOSTS
    assert all(len(s) == SLICE_HOSTS for s in slices)
    assert frozenset().union(*slices) == set(hosts)
    assert sum(len(s) for s in slices) == len(hosts)
    uneven = probe_slices(hosts[:17])  # 3 slices of 6, 6 and 5: never 8, 8 and 1
    assert sorted(len(s) for s in uneven) == [5, 6, 6]
    big = probe_slices([f"h{i}" for i in range(200)])  # past 64 hosts the slices grow
    assert len(big) == MOST_SLICES and sorted({len(s) for s in big}) == [25]


def test_a_round_takes_the_interval_and_counts_its_slices_time() -> None:
    probes = ProbeRound()
    probes.begin([f"h{i}" for i in range(32)], "h3")
    assert probes.starting and probes.lost_primary == "h3"
    assert probes.step(2.0) == 0.5  # 4 slices, one every 0.5 s
    seen = []
    for _ in range(3):
        seen.append(probes.current())
        assert not probes.advance(0.1, failed=False)
    seen.append(probes.current())
    assert probes.advance(0.1, failed=True)  # the fourth ends the round
    assert probes.starting and probes.failed and round(probes.seconds, 6) == 0.4
    assert len(set(seen)) == 4
    probes.begin(["a"], None)  # a new round forgets the last one's cost and failure
    assert probes.seconds == 0.0 and not probes.failed and probes.lost_primary is None
