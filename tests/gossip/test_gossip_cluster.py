"""Tier 3: seeded simulations of whole gossip clusters on virtual time."""

from __future__ import annotations

import math

import pytest

from ringkv.gossip import (
    ALIVE, DOWN, LEFT, REMOVED, SUSPECT, UP, LivenessChanged, SimCluster, convergence_rounds,
)
from ringkv.gossip.messages import Gossip
from ringkv.simnet import uniform_delay


def jittery(rng) -> float:
    """Mostly sub-20 ms, with 5 % spikes up to 150 ms."""
    return rng.uniform(0.0005, 0.02) if rng.random() < 0.95 else rng.uniform(0.02, 0.15)


def all_alive(c: SimCluster) -> bool:
    return c.all_see(lambda nd: set(nd.liveness_map().values()) == {ALIVE})


def started(n: int, seed: int, **kw) -> SimCluster:
    c = SimCluster(n, seed, seeding="star", **kw)
    assert c.run_until_true(lambda: c.converged() and len(c.node(0).members) == n, 30)
    c.net.run_for(3)
    assert all_alive(c)
    return c


def downs(c: SimCluster, node_id: str | None = None) -> list:
    return [(t, a, e) for t, a, e in c.events if isinstance(e, LivenessChanged)
            and e.new == DOWN and (node_id is None or e.node_id == node_id)]


def test_1000_members_converge_within_2_log2_n_rounds():
    rounds = convergence_rounds(1000, seed=1)
    assert rounds <= 2 * math.log2(1000)


@pytest.mark.parametrize("n,seeding", [(10, "tree"), (100, "tree"), (100, "star")])
def test_small_clusters_converge_fast(n, seeding):
    for seed in range(3):
        assert convergence_rounds(n, seed, seeding=seeding, codec=True) <= 2 * math.log2(n)


@pytest.mark.parametrize("n", [5, 10, 20])
def test_crashed_member_is_declared_down_by_all_within_5s(n):
    for seed in range(4):
        c = started(n, seed, delay=uniform_delay(0.0005, 0.02))
        victim = f"n{seed % n}"
        before = {nd.node_id: nd.members[victim] for nd in c.up_nodes()}
        c.crash(seed % n)
        t0 = c.net.now
        others = c.up_nodes()
        assert c.run_until_true(lambda: c.all_see(lambda nd: nd.liveness(victim) == DOWN, others),
                                5.0, every=0.01), f"seed {seed}: not down everywhere after 5 s"
        # liveness only: the member keeps its entry (tokens, status)
        assert all(nd.members[victim] == before[nd.node_id] for nd in others)
        assert c.net.now - t0 <= 5.0


@pytest.mark.parametrize("n,seed", [(5, 0), (12, 1), (20, 2)])
def test_no_false_down_under_5_percent_loss_for_10_minutes(n, seed):
    c = SimCluster(n, seed, seeding="tree", drop=0.05, delay=jittery)
    c.net.run_until(600)
    assert downs(c) == []
    assert c.converged() and len(c.node(0).members) == n
    assert c.net.stats["dropped"] > 0.04 * c.net.stats["sent"]


def test_partition_heals_into_one_view_all_alive():
    c = started(5, 3)
    side_a, side_b = [0, 1, 2], [3, 4]
    c.net.partition([c.addr(i) for i in side_a], [c.addr(i) for i in side_b])
    cut = lambda: all(c.node(i).liveness(f"n{j}") == DOWN  # noqa: E731
                      for x, y in ((side_a, side_b), (side_b, side_a)) for i in x for j in y)
    assert c.run_until_true(cut, 15)
    # each side keeps changing on its own meanwhile
    c.act(0, lambda nd, now: nd.set_metadata("ks/a", {"n": 3}, now))
    c.act(4, lambda nd, now: nd.update_self(now, status=UP))
    c.net.run_for(10)
    assert not c.converged()
    c.net.heal()
    assert c.run_until_true(lambda: c.converged() and all_alive(c), 10)
    assert all(nd.metadata == {"ks/a": {"n": 3}} for nd in c.up_nodes())


def test_false_suspicion_is_refuted():
    c = started(8, 4)
    victim = c.node(5)
    assert victim.self_member.incarnation == 0
    c.net.send(c.addr(0), c.addr(1), Gossip("n0", [["s", "n5", 0, "n0"]]))
    assert c.run_until_true(lambda: victim.self_member.incarnation == 1
                            and c.all_see(lambda nd: nd.members["n5"].incarnation == 1), 5)
    assert any(e.node_id == "n5" and e.new == SUSPECT for _, _, e in c.events
               if isinstance(e, LivenessChanged))
    c.net.run_for(10)
    assert downs(c, "n5") == [] and all_alive(c)


def test_restarted_node_is_seen_alive_again():
    c = started(6, 5)
    c.crash(2)
    others = [nd for nd in c.up_nodes()]
    assert c.run_until_true(lambda: c.all_see(lambda nd: nd.liveness("n2") == DOWN, others), 6)
    c.net.run_for(5)
    fresh = c.add(2, [c.addr(0)])  # a new process: empty state, incarnation 0
    assert c.run_until_true(lambda: c.converged() and all_alive(c), 5)
    assert fresh.self_member.incarnation >= 1 and len(fresh.members) == 6


def test_removed_member_stays_removed_under_stale_gossip():
    c = started(6, 6)
    old = c.node(4)
    c.crash(4)
    assert c.run_until_true(lambda: c.node(0).liveness("n4") == DOWN, 6)
    c.act(0, lambda nd, now: nd.remove_member("n4", now))
    assert c.run_until_true(lambda: c.all_see(lambda nd: nd.members["n4"].status == REMOVED), 5)
    # the old process comes back with its stale view (believing itself up) ...
    c.net.restart(c.addr(4), old)
    c.net.run_for(10)
    assert c.converged() and c.all_see(lambda nd: nd.members["n4"].status == REMOVED)
    assert old.self_member.status == REMOVED
    # ... and so does a fresh process under the same id
    c.crash(4)
    c.add(4, [c.addr(1)])
    c.net.run_for(10)
    assert c.converged() and c.all_see(lambda nd: nd.members["n4"].status == REMOVED)
    assert all("n4" not in nd.liveness_map() for nd in c.up_nodes() if nd.node_id != "n4")


def test_metadata_converges_with_concurrent_writes_and_deletes():
    c = started(10, 7, drop=0.05, delay=jittery)
    c.act(1, lambda nd, now: nd.set_metadata("ks/users", {"n": 3, "r": 2, "w": 2}, now))
    c.act(2, lambda nd, now: nd.set_metadata("ks/users", {"n": 5, "r": 3, "w": 3}, now))
    c.act(3, lambda nd, now: nd.set_metadata("ks/feeds", {"n": 3}, now))
    c.act(4, lambda nd, now: nd.set_metadata("ks/tmp", "x", now))
    c.net.run_for(2)
    c.act(5, lambda nd, now: nd.set_metadata("ks/tmp", None, now))
    c.net.run_for(5)
    metas = [dict(nd.metadata) for nd in c.up_nodes()]
    assert all(m == metas[0] for m in metas)
    assert set(metas[0]) == {"ks/users", "ks/feeds"}
    assert metas[0]["ks/users"] == {"n": 5, "r": 3, "w": 3}  # tie on counter: writer id decides


def test_left_member_is_not_probed_or_declared_down():
    c = started(6, 8)
    c.act(3, lambda nd, now: nd.update_self(now, status=LEFT))
    assert c.run_until_true(lambda: c.all_see(lambda nd: nd.members["n3"].status == LEFT), 3)
    c.crash(3)
    c.net.run_for(10)
    assert downs(c, "n3") == []
    assert c.converged() and all_alive(c)


def test_late_joiner_learns_the_view():
    c = started(20, 9)
    c.add(20, [c.addr(7)])
    assert c.run_until_true(lambda: c.converged() and len(c.node(0).members) == 21, 2)
