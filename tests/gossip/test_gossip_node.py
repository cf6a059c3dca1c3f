"""Tier 1: the gossip core alone, fed events by hand, effects asserted."""

from __future__ import annotations

import random

import msgpack
import pytest

from ringkv.errors import BadRequest, NotFound, TooLarge
from ringkv.gossip import (
    ALIVE, DOWN, LEFT, REMOVED, SUSPECT, UP, GossipConfig, GossipNode, LivenessChanged,
    Member, MemberChanged, MetadataChanged, Send,
)
from ringkv.gossip.messages import Ack, Gossip, Join, Nack, Ping, PingReq, Sync, SyncDelta
from ringkv.wire import decode_body, encode_body

CFG = GossipConfig()


def A(i: int) -> str:
    return f"tcp://127.0.0.1:{7100 + i}"


def node(i: int, seeds=(), **kw) -> GossipNode:
    return GossipNode(f"n{i}", A(i), seeds=list(seeds), tokens=(i * 1000,),
                      rng=random.Random(i), **kw)


def sends(effects, cls=None):
    return [e for e in effects if isinstance(e, Send) and (cls is None or isinstance(e.msg, cls))]


def of(effects, cls):
    return [e for e in effects if isinstance(e, cls)]


def wire(msg):
    """Through the real codec, as the shell would."""
    t, body = msgpack.unpackb(msgpack.packb(list(encode_body(msg))))
    return decode_body(t, body)


def pump(cores: dict[str, GossipNode], effects_by_addr: dict[str, list], now: float, skip=()) -> None:
    """Deliver sends between ``cores`` (instantly, in order) until nothing is left."""
    queue = [(src, e) for src, effs in effects_by_addr.items() for e in sends(effs)]
    while queue:
        src, e = queue.pop(0)
        if e.addr in cores and e.addr not in skip:
            queue.extend((e.addr, x) for x in sends(cores[e.addr].receive(src, wire(e.msg), now)))


def cluster(n: int) -> dict[str, GossipNode]:
    """n cores that know each other (joined through n0), run with a perfect
    network until their views agree; the tests then continue at ``T0``."""
    cores = {A(i): node(i, seeds=[A(0)] if i else []) for i in range(n)}
    now = 0.0
    while now < T0 - 1:
        pump(cores, {a: c.tick(now) for a, c in cores.items()}, now)
        now += 0.1
    assert len({c.view_fingerprint() for c in cores.values()}) == 1
    assert all(set(c.liveness_map().values()) == {ALIVE} for c in cores.values())
    return cores


T0 = 10.0


def test_ping_gets_ack_with_incarnation_and_wrong_target_is_ignored():
    c = node(0, incarnation=4)
    c.tick(0.0)
    effs = c.receive(A(1), Ping(9, "n1", A(1), "n0", []), 0.1)
    [ack] = sends(effs, Ack)
    assert ack.addr == A(1) and ack.msg.seq == 9 and ack.msg.incarnation == 4
    assert sends(c.receive(A(1), Ping(10, "n1", A(1), "someone-else", []), 0.1)) == []


def test_join_handshake_gives_both_sides_the_view():
    cores = {A(0): node(0), A(1): node(1, seeds=[A(0)])}
    effs = {a: c.tick(0.0) for a, c in cores.items()}
    assert [e.addr for e in sends(effs[A(1)], Join)] == [A(0)]
    pump(cores, effs, 0.0)
    for c in cores.values():
        assert set(c.members) == {"n0", "n1"}
        assert c.liveness("n0") == c.liveness("n1") == ALIVE
    assert cores[A(0)].view_fingerprint() == cores[A(1)].view_fingerprint()
    # once it knows a peer it stops announcing
    assert sends(cores[A(1)].tick(5.0), Join) == []


def test_failed_probe_goes_indirect_then_suspect_then_down():
    cores = cluster(5)
    c = cores[A(0)]
    t = max(c.next_deadline(), T0)
    ping = None
    while ping is None:  # advance to the first probe
        effs = c.tick(t)
        pings = sends(effs, Ping)
        ping = pings[0] if pings else None
        t = c.next_deadline()
    target = ping.msg.target_id
    # no ack: at the direct deadline k=3 ping-reqs go to other members
    effs = c.tick(t)
    reqs = sends(effs, PingReq)
    assert len(reqs) == CFG.indirect_checks
    assert all(r.msg.target_id == target and r.addr != ping.addr for r in reqs)
    assert c.receive(A(9), Nack(reqs[0].msg.seq, "n1"), t) == []
    # period ends without any ack: suspect
    t = c.next_deadline()
    effs = c.tick(t)
    assert LivenessChanged(target, ALIVE, SUSPECT) in effs
    assert c.liveness(target) == SUSPECT
    # the suspicion rumor is piggybacked (to the suspect first: Lifeguard's buddy rule)
    lo, hi = CFG.suspicion_bounds(5)
    end = t + hi
    while t < end + 1:
        t = min(c.next_deadline(), end + 1)
        effs = c.tick(t)
        for s in sends(effs, Ping):
            if s.msg.target_id == target:
                assert s.msg.gossip[0] == ["s", target, 0, "n0"]
        if [e for e in of(effs, LivenessChanged) if e.node_id == target]:
            break
    assert LivenessChanged(target, SUSPECT, DOWN) in effs
    assert lo <= t - (end - hi) <= hi + 1e-9
    assert c.liveness(target) == DOWN
    assert c.members[target].status == UP or c.members[target].tokens  # membership untouched


def test_ack_for_unknown_probe_is_ignored():
    cores = cluster(3)
    c = cores[A(0)]
    before = dict(c.members)
    assert c.receive(A(1), Ack(12345, "n1", 7, []), T0) == []
    assert c.receive(A(1), Nack(12345, "n1"), T0) == []
    assert dict(c.members) == before and c.liveness("n1") == ALIVE


def test_suspected_member_refutes_by_bumping_incarnation():
    cores = cluster(3)
    c1 = cores[A(1)]
    effs = c1.receive(A(0), Gossip("n0", [["s", "n1", 0, "n0"]]), T0)
    [changed] = of(effs, MemberChanged)
    assert changed.new.incarnation == 1 and c1.self_member.incarnation == 1
    [ack] = sends(c1.receive(A(0), Ping(3, "n0", A(0), "n1", []), T0 + 0.1), Ack)
    assert ack.msg.incarnation == 1
    assert ["m", c1.self_member.wire()] in [list(x) for x in ack.msg.gossip]
    # a stale rumor (older incarnation) is not refuted again
    assert of(c1.receive(A(0), Gossip("n0", [["d", "n1", 0, "n0"]]), T0 + 0.2), MemberChanged) == []


def test_down_member_that_refutes_is_alive_again():
    cores = cluster(3)
    c0 = cores[A(0)]
    c0.receive(A(2), Gossip("n2", [["d", "n1", 0, "n2"]]), T0)
    assert c0.liveness("n1") == DOWN
    newer = Member("n1", A(1), (1000,), cores[A(1)].self_member.status, 1, 0)
    effs = c0.receive(A(1), Gossip("n1", [["m", list(newer.wire())]]), T0 + 1)
    assert LivenessChanged("n1", DOWN, ALIVE) in effs
    # a stale down rumor cannot knock it down again
    c0.receive(A(2), Gossip("n2", [["d", "n1", 0, "n2"]]), T0 + 1.1)
    assert c0.liveness("n1") == ALIVE


def test_restarted_node_outbids_its_old_entry():
    cores = cluster(3)
    for _ in range(3):
        cores[A(1)].receive(A(0), Gossip("n0", [["s", "n1", cores[A(1)].self_member.incarnation, "n0"]]), T0)
    old_inc = cores[A(1)].self_member.incarnation
    pump(cores, {A(1): cores[A(1)].tick(T0)}, T0)
    fresh = node(1, seeds=[A(0)])  # new process, incarnation 0
    cores[A(1)] = fresh
    pump(cores, {A(1): fresh.tick(T0 + 1)}, T0 + 1)
    assert fresh.self_member.incarnation > old_inc


def test_update_self_remove_member_and_metadata():
    cores = cluster(3)
    c0, c1 = cores[A(0)], cores[A(1)]
    effs = c1.update_self(T0, status=UP)
    [ch] = of(effs, MemberChanged)
    assert ch.new.status == UP and ch.new.counter == ch.old.counter + 1
    effs = c0.remove_member("n2", T0)
    assert of(effs, MemberChanged)[0].new.status == REMOVED
    assert c0.liveness("n2") is None
    assert c0.remove_member("n2", T0 + 0.1) == []  # already removed
    with pytest.raises(BadRequest):
        c0.remove_member("n0", T0)
    with pytest.raises(NotFound):
        c0.remove_member("nope", T0)
    with pytest.raises(BadRequest):
        c0.update_self(T0, status=REMOVED)
    effs = c0.set_metadata("keyspace/users", {"n": 3, "r": 2, "w": 2}, T0)
    assert MetadataChanged("keyspace/users", {"n": 3, "r": 2, "w": 2}) in effs
    assert c0.metadata == {"keyspace/users": {"n": 3, "r": 2, "w": 2}}
    with pytest.raises(BadRequest):
        c0.set_metadata("k", object(), T0)
    with pytest.raises(BadRequest):
        c0.set_metadata("k", {1: "int keys do not survive msgpack's strict_map_key"}, T0)
    with pytest.raises(TooLarge):
        c0.set_metadata("k", "x" * 100_000, T0)
    c0.set_metadata("k", (1, 2), T0)
    assert c0.metadata["k"] == [1, 2]  # stored as every peer will see it
    c0.set_metadata("k", None, T0)
    assert "k" not in c0.metadata
    with pytest.raises(TypeError):
        c0.metadata["x"] = 1  # type: ignore[index]


def test_stale_gossip_cannot_resurrect_a_removed_member():
    cores = cluster(3)
    c0 = cores[A(0)]
    stale = c0.members["n2"]
    c0.remove_member("n2", T0)
    newer_live = Member("n2", A(2), stale.tokens, UP, stale.incarnation + 5, 0)
    for m in (stale, newer_live):
        c0.receive(A(1), SyncDelta("n1", A(1), [list(m.wire())], [], [], []), T0 + 1)
        assert c0.members["n2"].status == REMOVED
    assert "n2" not in c0.liveness_map()


def test_node_learns_it_was_removed_and_does_not_fight_it():
    cores = cluster(3)
    cores[A(0)].remove_member("n2", T0)
    c2 = cores[A(2)]
    removed = cores[A(0)].members["n2"]
    effs = c2.receive(A(0), Gossip("n0", [["m", list(removed.wire())]]), T0)
    assert of(effs, MemberChanged)[0].new.status == REMOVED
    assert c2.self_member.status == REMOVED
    with pytest.raises(BadRequest):
        c2.update_self(T0 + 0.1, status=UP)


def test_leave_is_final_and_spreads():
    cores = cluster(3)
    effs = cores[A(1)].update_self(T0, status=LEFT)
    pump(cores, {A(1): effs + cores[A(1)].tick(T0)}, T0)
    for i in range(5):
        pump(cores, {a: c.tick(T0 + i * 0.5) for a, c in cores.items()}, T0 + i * 0.5)
    assert all(c.members["n1"].status == LEFT for c in cores.values())


def test_sync_exchanges_only_differences():
    cores = cluster(4)
    c0, c3 = cores[A(0)], cores[A(3)]
    # identical views: a sync gets no answer at all
    def opener():
        return Sync("n0", A(0), list(c0.view_fingerprint()), c0._meta.fp, [])

    assert c3.receive(A(0), opener(), T0) == []
    c0.set_metadata("a", 1, T0)
    c0.update_self(T0, status=UP)
    [reply] = [e.msg for e in sends(c3.receive(A(0), opener(), T0))]
    assert isinstance(reply, Sync) and len(reply.buckets) == 64
    effs = c0.receive(A(3), reply, T0)
    [digest] = [e.msg for e in sends(effs)]
    assert len(digest.buckets) == 1 and len(digest.digest) <= 4
    pump({A(0): c0, A(3): c3}, {A(0): effs}, T0)
    assert c0.view_fingerprint() == c3.view_fingerprint() and c3.metadata == {"a": 1}


def test_next_deadline_contract():
    c = node(0, seeds=[A(1)])
    assert c.next_deadline() <= 0.0  # tick now
    effs = c.tick(0.0)
    assert sends(effs, Join)
    d = c.next_deadline()
    assert 0.0 < d <= CFG.join_retry
    assert sends(c.tick(d - 1e-9), Join) == []


def test_public_names():
    import ringkv.gossip as g

    assert set(g.__all__) == {
        "GossipNode", "GossipConfig", "Effect", "Send", "MemberChanged", "MemberPurged", "LivenessChanged",
        "MetadataChanged", "ALIVE", "SUSPECT", "DOWN", "Member", "MetaEntry", "JOINING", "UP",
        "LEAVING", "LEFT", "REMOVED", "STATUSES", "TERMINAL", "merge_member", "merge_views",
        "merge_meta", "merge_metadata", "GOSSIP_MESSAGES", "Ping", "Ack", "Nack", "PingReq",
        "Gossip", "Join", "Sync", "SyncDigest", "SyncDelta", "SimCluster", "convergence_rounds",
    }
    assert all(hasattr(g, name) for name in g.__all__)
