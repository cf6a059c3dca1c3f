"""The transport-level fault injector: rules files, the node-side filter, a real transport pair."""

from __future__ import annotations

import asyncio

import pytest

from ringkv.errors import Timeout
from ringkv.faults import ENV, Injector, Rule, RulesNetwork, read_rules, write_rules
from ringkv.node_messages import NodeStats, NodeStatsReply
from ringkv.simloop import run_virtual
from ringkv.transport import Transport

A, B, C = "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3"


class FakePeer:
    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.queue: list = []
        self.closed = False


def _items(n: int) -> list:
    return [(0, i + 1, "node.stats", None, b"\x90") for i in range(n)]


def test_rules_file_round_trip_and_partition_rules(tmp_path):
    net = RulesNetwork(str(tmp_path / "rules.json"), seed=3)
    net.addr_of = {0: A, 1: B, 2: C}.__getitem__
    net.partition([0, 1], [2])
    seed, rules = read_rules(net.path)
    assert seed == 3
    assert {(r.src, r.dst) for r in rules} == {(A, C), (B, C), (C, A), (C, B)}
    assert all(r.drop == 1.0 for r in rules)
    net.slow(1, 0.2, 0.1)
    _, rules = read_rules(net.path)
    assert Rule(B, "*", delay=0.2, jitter=0.1) in rules and Rule("*", B, delay=0.2, jitter=0.1) in rules
    net.heal()
    assert read_rules(net.path)[1] == []


def _scribble(path: str) -> None:
    with open(path, "w") as f:
        f.write("{not json")


def test_injector_drops_delays_and_rereads_its_rules(tmp_path):
    path = str(tmp_path / "rules.json")

    async def main():
        loop = asyncio.get_running_loop()
        inj = Injector(path, A, loop)
        to_b, to_c = FakePeer(B), FakePeer(C)
        marked: list = []
        write_rules(path, [Rule(A, B, drop=1.0), Rule(A, C, delay=0.5)])
        to_b.queue, to_c.queue = _items(3), _items(2)
        inj.outbound(to_b, loop.time(), marked.append)
        inj.outbound(to_c, loop.time(), marked.append)
        assert to_b.queue == [] and to_c.queue == []  # dropped / held back
        assert inj.stats["dropped"] == 3 and inj.stats["delayed"] == 2
        await asyncio.sleep(0.6)
        assert [it[1] for it in to_c.queue] == [1, 2] and marked == [to_c, to_c]
        inj.outbound(to_c, loop.time(), marked.append)  # released items are never judged twice
        assert len(to_c.queue) == 2
        # heal: the file changes, the next check (after CHECK_EVERY) sees it
        write_rules(path, [])
        await asyncio.sleep(0.05)
        to_b.queue = _items(2)
        inj.outbound(to_b, loop.time(), marked.append)
        assert len(to_b.queue) == 2
        # an unreadable file keeps the rules in force
        write_rules(path, [Rule(A, B, drop=1.0)])
        await asyncio.sleep(0.05)
        inj.refresh(loop.time())
        _scribble(path)
        await asyncio.sleep(0.05)
        to_b.queue = _items(1)
        inj.outbound(to_b, loop.time(), marked.append)
        assert to_b.queue == []

    run_virtual(main())


def test_injector_filters_replies_by_the_requesters_address(tmp_path):
    path = str(tmp_path / "rules.json")
    write_rules(path, [Rule(A, B, drop=1.0), Rule(A, C, delay=0.3)])

    async def main():
        loop = asyncio.get_running_loop()
        inj = Injector(path, A, loop)
        resent: list = []
        out = inj.replies(
            {B.encode() + b"#x.1": [b"r1"], C.encode() + b"#y.1": [b"r2"], b"client#z.1": [b"r3"]},
            loop.time(), lambda ident, part: resent.append((ident, part)),
        )
        assert out == {b"client#z.1": [b"r3"]}  # clients are never cut off
        await asyncio.sleep(0.4)
        assert resent == [(C.encode() + b"#y.1", b"r2")]
        assert inj.replies({C.encode() + b"#y.1": [resent[0][1]]}, loop.time(), None) == {C.encode() + b"#y.1": [b"r2"]}

    run_virtual(main())


async def _handler(peer, msg):
    return NodeStatsReply(1, 2)


def test_a_real_transport_obeys_the_rules_only_when_enabled(tmp_path, monkeypatch):
    path = str(tmp_path / "rules.json")
    write_rules(path, [])

    async def main():
        plain = Transport("tcp://127.0.0.1:0", _handler)
        await plain.start()
        assert plain._faults is None  # off unless the variable is set at start
        monkeypatch.setenv(ENV, path)
        server = Transport("tcp://127.0.0.1:0", _handler)
        caller = Transport("tcp://127.0.0.1:0", _handler)
        await server.start()
        await caller.start()
        monkeypatch.delenv(ENV)
        loop = asyncio.get_running_loop()

        def rules(*rs: Rule) -> None:
            write_rules(path, rs)
            for t in (server, caller):  # what the next cheap check would see, now
                t._faults.refresh(loop.time(), force=True)

        try:
            assert (await caller.request(server.address, NodeStats(), 2.0)).hints == 2
            rules(Rule(caller.address, server.address, drop=1.0))
            with pytest.raises(Timeout):
                await caller.request(server.address, NodeStats(), 0.5)
            rules(Rule(server.address, caller.address, drop=1.0))  # replies lost
            with pytest.raises(Timeout):
                await caller.request(server.address, NodeStats(), 0.5)
            rules(Rule(caller.address, server.address, delay=0.3))
            t0 = loop.time()
            await caller.request(server.address, NodeStats(), 2.0)
            assert loop.time() - t0 >= 0.3
            rules()
            await caller.request(server.address, NodeStats(), 2.0)
            assert (await plain.request(server.address, NodeStats(), 2.0)).keys == 1
        finally:
            for t in (plain, server, caller):
                await t.stop()

    asyncio.run(main())


def test_a_peer_reconnecting_with_its_routing_id_is_answered():
    # What a paused (SIGSTOP) node meets on SIGCONT: a peer's DEALER reconnected
    # with the same routing id while its old connection still looked alive.
    import zmq

    from ringkv.envelope import REQUEST, Codec, decode

    async def main():
        server = Transport("tcp://127.0.0.1:0", _handler)
        await server.start()
        ctx = zmq.Context()
        codec = Codec()
        frame = codec.frames([codec.part(REQUEST, 1, NodeStats.TYPE, None, codec.pack_body([]))])[0][0]
        socks = []
        try:
            for _ in range(2):  # the second connects while the first is still there
                s = ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.ROUTING_ID, b"tcp://127.0.0.1:9#same.1")
                s.connect(server.address)
                socks.append(s)
                s.send(frame)
                deadline = asyncio.get_running_loop().time() + 3.0
                while not s.poll(0):
                    assert asyncio.get_running_loop().time() < deadline, "no answer on the reconnected routing id"
                    await asyncio.sleep(0.01)  # let the server's loop run
                assert decode(s.recv())[0].request_id == 1
        finally:
            for s in socks:
                s.close(0)
            ctx.term()
            await server.stop()

    asyncio.run(main())
