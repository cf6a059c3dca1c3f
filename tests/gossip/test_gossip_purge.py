"""Departed members are purged after ``purge_after`` and cannot come back from stale state."""

from __future__ import annotations

import math
import random

import pytest

from ringkv.errors import BadRequest, ProtocolError
from ringkv.gossip import (
    ALIVE, LEFT, REMOVED, UP, GossipConfig, GossipNode, Member, MemberChanged, MemberPurged,
    SimCluster,
)
from ringkv.gossip.messages import Gossip, Join, SyncDelta, SyncDigest, check_gossip_item
from ringkv.gossip.node import RETAIN_RECHECK

PURGE = 30.0
CFG = GossipConfig(purge_after=PURGE, purge_quarantine=60.0)


def started(n: int, seed: int, config: GossipConfig = CFG) -> SimCluster:
    c = SimCluster(n, seed, seeding="star", config=config)
    assert c.run_until_true(lambda: c.converged() and len(c.node(0).members) == n, 30)
    c.net.run_for(2)
    return c


def all_alive(c: SimCluster) -> bool:
    return c.all_see(lambda nd: set(nd.liveness_map().values()) == {ALIVE})


def depart(c: SimCluster, i: int, how: str) -> float:
    """Member ``i`` leaves (or dies and is removed) and stops; returns when all others know."""
    victim = f"n{i}"
    if how == "leave":
        c.act(i, lambda nd, now: nd.update_self(now, status=LEFT))
        status = LEFT
    else:
        c.crash(i)
        assert c.run_until_true(lambda: c.node(0).liveness(victim) == "down", 10)
        c.act(0, lambda nd, now: nd.remove_member(victim, now))
        status = REMOVED
    t0 = c.net.now
    assert c.run_until_true(lambda: c.all_see(lambda nd: nd.members[victim].status == status), 3)
    c.crash(i)  # a node that left stops; a removed one is dead already
    return t0


def purged(c: SimCluster, node_id: str) -> list:
    return [(t, a) for t, a, e in c.events if isinstance(e, MemberPurged) and e.last.node_id == node_id]


@pytest.mark.parametrize("how", ["leave", "remove"])
def test_departed_member_is_purged_everywhere_after_purge_after(how):
    c = started(6, 11)
    t0 = depart(c, 3, how)
    others = c.up_nodes()
    c.net.run_until(t0 + PURGE + 5)
    assert c.all_see(lambda nd: "n3" not in nd.members)
    assert c.converged() and c.all_see(lambda nd: len(nd.members) == 5)
    assert c.all_see(lambda nd: set(nd.liveness_map()) == {f"n{i}" for i in (0, 1, 2, 4, 5)})
    assert {a for _, a in purged(c, "n3")} == {nd.addr for nd in others}
    assert all(t >= t0 + PURGE for t, _ in purged(c, "n3"))
    assert c.all_see(lambda nd: nd.quarantined()["n3"].status in (LEFT, REMOVED) and nd.departed("n3"))
    # quarantine ends in time too; nothing left about n3 anywhere
    c.net.run_for(CFG.purge_quarantine + 5)
    assert c.all_see(lambda nd: nd.quarantined() == {} and not nd.departed("n3"))
    assert c.converged() and all_alive(c)


def test_departed_member_is_still_listed_before_purge_after():
    c = started(6, 12)
    t0 = depart(c, 2, "leave")
    c.net.run_until(t0 + PURGE - 1)
    assert c.all_see(lambda nd: nd.members["n2"].status == LEFT and nd.quarantined() == {})
    assert purged(c, "n2") == []
    assert c.converged() and c.all_see(lambda nd: len(nd.members) == 6)


def test_partitioned_node_with_a_stale_entry_cannot_bring_it_back():
    c = started(6, 13)
    stale = c.node(5)
    c.net.partition([c.addr(i) for i in range(5)], [c.addr(5)])
    c.act(3, lambda nd, now: nd.update_self(now, status=LEFT))
    majority = [c.node(i) for i in (0, 1, 2, 4)]
    assert c.run_until_true(lambda: c.all_see(lambda nd: nd.members["n3"].status == LEFT, majority), 3)
    c.crash(3)
    t0 = c.net.now
    c.net.run_until(t0 + PURGE + 5)
    assert c.all_see(lambda nd: "n3" not in nd.members, majority)
    assert not stale.members["n3"].terminal  # missed the departure: still a live member in its eyes
    t_heal = c.net.now
    c.net.heal()
    assert c.run_until_true(lambda: c.converged() and all_alive(c), 15)
    assert c.all_see(lambda nd: "n3" not in nd.members and len(nd.members) == 5)
    # nobody took the entry back, not even for a moment; n5 learned the departure, then purged
    back = [(t, a) for t, a, e in c.events if isinstance(e, MemberChanged) and e.new.node_id == "n3"
            and t > t_heal and a != stale.addr]
    assert back == []
    seen = [e.new.status for t, a, e in c.events
            if isinstance(e, MemberChanged) and e.new.node_id == "n3" and a == stale.addr and t > t_heal]
    assert seen == [LEFT]
    assert [a for t, a in purged(c, "n3") if t > t_heal] == [stale.addr]
    c.net.run_for(10)
    assert c.converged() and c.all_see(lambda nd: "n3" not in nd.members)


def test_old_process_with_a_stale_view_restarts_after_the_purge():
    c = started(5, 14)
    old = c.node(4)
    c.crash(4)  # stopped (not ticking) while the cluster still lists n1 as up
    t0 = depart(c, 1, "leave")
    c.net.run_until(t0 + PURGE + 5)
    assert c.all_see(lambda nd: "n1" not in nd.members)
    assert not old.members["n1"].terminal
    c.net.restart(c.addr(4), old)
    assert c.run_until_true(lambda: c.converged() and all_alive(c), 15)
    assert c.all_see(lambda nd: "n1" not in nd.members and len(nd.members) == 4)


def test_late_learner_purges_with_the_others_not_a_full_period_later():
    c = started(5, 15)
    t0 = depart(c, 2, "leave")
    c.net.run_until(t0 + PURGE - 3)
    late = c.add(5, [c.addr(0)])  # learns the left entry now, its own timer would run PURGE more
    assert c.run_until_true(lambda: "n2" in late.members, 2)
    c.net.run_until(t0 + PURGE + 5)
    assert c.converged() and c.all_see(lambda nd: "n2" not in nd.members)
    assert late.quarantined()["n2"].status == LEFT


def test_default_keeps_departed_members_three_days():
    assert GossipConfig().purge_after == 3 * 24 * 3600.0
    assert GossipConfig().purge_quarantine == 3 * 24 * 3600.0


@pytest.mark.parametrize("bad", [{"purge_after": -1.0}, {"purge_quarantine": -0.5},
                                 {"purge_after": math.nan}, {"purge_after": "3d"}])
def test_negative_or_bad_purge_settings_are_rejected(bad):
    with pytest.raises(BadRequest):
        GossipConfig(**bad)


# -- the core alone -----------------------------------------------------------------

def A(i: int) -> str:
    return f"tcp://127.0.0.1:{7300 + i}"


def core(i: int, **kw) -> GossipNode:
    kw.setdefault("config", CFG)
    return GossipNode(f"n{i}", A(i), tokens=(i,), rng=random.Random(i), **kw)


def with_departed(nd: GossipNode, now: float = 1.0) -> Member:
    """Teach ``nd`` a member n9 that then left; returns the left entry."""
    up = Member("n9", A(9), (9,), UP, 0, 3)
    gone = Member("n9", A(9), (9,), LEFT, 0, 4)
    nd.receive(A(9), Gossip("n9", [["m", list(up.wire())]]), now)
    nd.receive(A(9), Gossip("n9", [["m", list(gone.wire())]]), now)
    assert nd.members["n9"] == gone
    return gone


def run_to(nd: GossipNode, t: float) -> list:
    out = []
    while nd.next_deadline() <= t:
        out += nd.tick(max(nd.next_deadline(), 0.0))
    return out + nd.tick(t)


def test_stale_entries_for_a_purged_member_are_refused_and_answered_with_the_tombstone():
    nd = core(0)
    gone = with_departed(nd)
    effs = run_to(nd, 1.0 + PURGE)
    assert [e.last for e in effs if isinstance(e, MemberPurged)] == [gone]
    fp = nd.view_fingerprint()
    # a live copy with a far higher incarnation is still older than the tombstone
    newer_live = Member("n9", A(9), (9,), UP, 50, 0)
    for m in (newer_live, gone):
        effs = nd.receive(A(1), Gossip("n1", [["m", list(m.wire())]]), 40.0)
        assert effs == [] and "n9" not in nd.members
        effs = nd.receive(A(1), SyncDelta("n1", A(1), [list(m.wire())], [], [], []), 40.0)
        [reply] = [e for e in effs if hasattr(e, "msg")]
        assert reply.addr == A(1) and [list(x) for x in reply.msg.gossip] == [["p", list(gone.wire())]]
        assert "n9" not in nd.members and not [e for e in effs if isinstance(e, MemberChanged)]
    # a peer listing it in a digest is not asked for it but told
    effs = nd.receive(A(1), SyncDigest("n1", A(1), [0], [["n9", 0, 50, 0, 1]], 0, []), 40.0)
    [reply] = [e for e in effs if hasattr(e, "msg")]
    assert "n9" not in reply.msg.want and ["p", list(gone.wire())] in [list(x) for x in reply.msg.gossip]
    # a process under that id trying to join learns it is gone
    effs = nd.receive(A(9), Join(list(newer_live.wire())), 40.0)
    [reply] = [e for e in effs if hasattr(e, "msg")]
    assert ["p", list(gone.wire())] in [list(x) for x in reply.msg.gossip]
    assert nd.view_fingerprint() == fp and "n9" not in nd.members


def test_purged_marker_makes_a_holder_learn_and_purge_at_once():
    holder = core(1)
    holder.receive(A(9), Gossip("n9", [["m", list(Member("n9", A(9), (9,), UP, 2, 0).wire())]]), 1.0)
    tomb = Member("n9", A(9), (9,), LEFT, 0, 4)
    effs = holder.receive(A(0), SyncDelta("n0", A(0), [], [], [], [["p", list(tomb.wire())]]), 5.0)
    assert [e.new.status for e in effs if isinstance(e, MemberChanged)] == [LEFT]
    assert holder.next_deadline() <= 5.0
    effs = holder.tick(5.0)
    assert [e.last for e in effs if isinstance(e, MemberPurged)] == [tomb]
    assert "n9" not in holder.members and holder.departed("n9")
    # ... but a marker for a member it never heard of adds nothing
    fresh = core(2)
    assert fresh.receive(A(0), Gossip("n0", [["p", list(tomb.wire())]]), 5.0) == []
    assert "n9" not in fresh.members and fresh.quarantined() == {}


def test_retain_keeps_a_departed_member_while_the_shell_needs_it():
    held = {"n9"}
    nd = core(0, retain=lambda node_id: node_id in held)
    with_departed(nd)
    run_to(nd, 1.0 + PURGE + 10)
    assert nd.members["n9"].status == LEFT and nd.departed("n9")
    held.clear()
    effs = run_to(nd, 1.0 + PURGE + 10 + RETAIN_RECHECK)
    assert [e.last.node_id for e in effs if isinstance(e, MemberPurged)] == ["n9"]
    assert "n9" not in nd.members and nd.departed("n9")


def test_own_entry_is_never_purged():
    nd = core(0)
    nd.tick(0.0)
    nd.update_self(0.0, status=LEFT)
    run_to(nd, 10 * PURGE)
    assert nd.members["n0"].status == LEFT and nd.self_member.status == LEFT


def test_infinite_purge_after_keeps_departed_members():
    nd = core(0, config=GossipConfig(purge_after=math.inf))
    with_departed(nd)
    run_to(nd, 1000.0)
    assert nd.members["n9"].status == LEFT and nd.quarantined() == {}


def test_purged_item_must_carry_a_departed_entry():
    check_gossip_item(["p", ["n9", A(9), [], LEFT, 0, 1]])
    with pytest.raises(ProtocolError):
        check_gossip_item(["p", ["n9", A(9), [], UP, 0, 1]])
