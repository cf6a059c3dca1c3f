"""Malformed anti-entropy messages: a ProtocolError (or a typed error) back, and the node stays up."""

from __future__ import annotations

import asyncio

import pytest

from ringkv import wire
from ringkv.dispatch import call_local
from ringkv.errors import BadRequest, KeyspaceNotFound, ProtocolError, RingKVError
from ringkv.quorum.aae_messages import (
    AaeHashes,
    AaeHashList,
    AaeKeyList,
    AaeKeys,
    AaePurge,
    AaePurged,
    AaeRepair,
    AaeRepairStats,
    AaeTombStates,
    AaeTombstones,
)
from ringkv.quorum.gc import Candidate, TombState, decide
from ringkv.repair import RepairConfig, run_repair
from ringkv.server import NodeConfig, NodeServer
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual
from ringkv.transport import Transport

D = b"\x00" * 16
TOP = 2**64 - 1

# (message type, wire body): each one must decode to ProtocolError, never anything else
MALFORMED = [
    ("aae.hashes", ["default", 10, 0, ["x"], []]),
    ("aae.hashes", ["default", 10, 0, [1 << 10], []]),
    ("aae.hashes", ["default", 10, 0, [-1], []]),
    ("aae.hashes", ["default", 10, 0, [True], []]),
    ("aae.hashes", ["default", 0, 0, [], []]),
    ("aae.hashes", ["default", 99, 0, [], []]),
    ("aae.hashes", ["default", 10, 99, [], []]),
    ("aae.hashes", ["default", 10, 1, [1], [[5, 4]]]),
    ("aae.hashes", ["default", 10, 1, [1], [[5, 9], [7, 12]]]),
    ("aae.hashes", ["default", 10, 1, [1], [[0, 2**64]]]),
    ("aae.hashes", ["default", 10, 1, [1], [[0]]]),
    ("aae.hashes", ["default", 10, 1, [1], "pieces"]),
    ("aae.hashes", ["", 10, 0, [], []]),
    ("aae.hashes", ["default", 10, 0, list(range(40000)), []]),
    ("aae.hashes", ["default", 10, 0]),
    ("aae.hash_list", [[b"short"]]),
    ("aae.hash_list", [[1]]),
    ("aae.keys", ["default", 5, 4, None, 10]),
    ("aae.keys", ["default", 0, 2**64, None, 10]),
    ("aae.keys", ["default", 0, TOP, None, 0]),
    ("aae.keys", ["default", 0, TOP, None, 10**6]),
    ("aae.keys", ["default", 0, TOP, "after", 10]),
    ("aae.key_list", [[[b"k" * 9, b"short"]], False]),
    ("aae.key_list", [[[b"k" * 9]], False]),
    ("aae.key_list", [[[b"b" * 9, D], [b"a" * 9, D]], False]),
    ("aae.key_list", [[[b"k", D]], False]),
    ("aae.key_list", [[], "yes"]),
    ("aae.tombstones", ["default", ["text"]]),
    ("aae.tombstones", ["default", b"keys"]),
    ("aae.tomb_states", [[[D, True]]]),
    ("aae.tomb_states", [[[b"x", True, False]]]),
    ("aae.tomb_states", [[[None, 1, False]]]),
    ("aae.purge", ["default", [[b"k", b"short"]]]),
    ("aae.purge", ["default", [[b"k"]]]),
    ("aae.purge", ["default", [b"k"]]),
    ("aae.purged", [-1]),
    ("aae.repair", [5]),
    ("aae.repair", [""]),
    ("aae.repair_stats", [{"a": "b"}]),
    ("aae.repair_stats", [{1: 2}]),
    ("aae.repair_stats", [{"a": True}]),
]


@pytest.mark.parametrize("type_name,body", MALFORMED)
def test_malformed_bodies_are_protocol_errors(type_name, body):
    with pytest.raises(ProtocolError):
        wire.decode_body(type_name, body)


def test_well_formed_bodies_decode():
    for msg in [
        AaeHashes("default", 10, 1, [0, 1023], [[0, 5], [6, TOP]]),
        AaeHashList([D, D]),
        AaeKeys("default", 0, TOP, b"x" * 9, 100),
        AaeKeyList([[b"a" * 9, D], [b"b" * 9, D]], True),
        AaeTombstones("default", [b"k"]),
        AaeTombStates([[None, False, False], [D, True, False]]),
        AaePurge("default/feeds", [[b"k", D]]),
        AaePurged(3),
        AaeRepair(None),
        AaeRepair("users"),
        AaeRepairStats({"keys_repaired": 1, "seconds": 0.5}),
    ]:
        assert wire.decode_body(msg.TYPE, msg.to_body()) == msg


def test_gc_decision_table():
    c = Candidate(b"k", b"s", D, ("a", "b", "c"))
    ok = TombState(D, True, False)
    other = TombState(b"\x01" * 16, True, False)

    def verdict(**states):
        v = decide([c], {m: [s] for m, s in states.items()}, "a")
        return [t for _, t in v.purge], [m for _, m in v.absorb]

    assert verdict(b=ok, c=ok, d=TombState(None, False, False)) == ([("b", "c")], [])
    assert verdict(b=ok, c=ok, d=ok) == ([("b", "c", "d")], [])  # a fallback's identical tombstone goes too
    assert verdict(b=ok, c=TombState(D, False, False)) == ([], [])  # c got it within the grace period
    assert verdict(b=ok, c=other) == ([], [])  # c holds another record
    assert verdict(b=ok, c=TombState(None, False, False)) == ([], [])  # c has nothing (wiped)
    assert verdict(b=ok) == ([], [])  # c did not answer
    assert verdict(b=ok, c=ok, d=TombState(None, False, True)) == ([], [])  # a hint pending anywhere
    assert verdict(b=ok, c=ok, d=other) == ([], ["d"])  # a stale fallback copy: absorb it first
    assert verdict(b=ok, c=ok, d=TombState(D, False, False)) == ([], [])


def test_bad_requests_through_the_node_and_the_node_stays_up(tmp_path):
    """Through the full envelope path of a simulated node: typed errors, then normal service."""

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=2, repair=RepairConfig(interval=0)).start()
        try:
            await cluster.wait_for(lambda: all(len(s.ring) == 3 and s.elastic.state == "idle" for s in cluster.servers), timeout=60)  # type: ignore[union-attr]
            server = cluster.servers[0]
            handle = server._handle  # type: ignore[union-attr]
            client = await cluster.client(0)
            await client.keyspace("default").aput(b"k", b"v", w=3)
            errors = []
            for msg in [
                AaeHashes("default", 10, 0, ["x"], []),  # type: ignore[list-item]
                AaeKeys("default", 9, 3, None, 10),
                AaePurge("default", [[b"k", b"short"]]),
                AaeTombstones("default", "keys"),  # type: ignore[arg-type]
            ]:
                with pytest.raises(ProtocolError):
                    await call_local(handle, msg)
            for msg, exc in [
                (AaeHashes("default", 9, 0, [0], []), BadRequest),  # another tree shape
                (AaeHashes("default", 10, 3, [0], []), BadRequest),  # no such level
                (AaeHashes("default", 10, 0, [40], []), BadRequest),  # no such node on level 0
                (AaeHashes("default", 10, 0, [1], [[0, 5]]), BadRequest),  # restricted above the leaves
                (AaeHashes("nope", 10, 0, [0], []), KeyspaceNotFound),
                (AaeKeys("nope/feeds", 0, TOP, None, 10), KeyspaceNotFound),
                (AaeTombstones("default/feeds", [b"not a feed key"]), BadRequest),
                (AaeRepair("nope"), KeyspaceNotFound),
            ]:
                try:
                    await call_local(handle, msg)
                except RingKVError as e:
                    errors.append((type(e), exc))
            # raw malformed frames over the simulated network are dropped; the node keeps going
            t = cluster.net.transport(None, None)
            await t.start()
            for type_name, body in MALFORMED[:10]:
                bad = AaeHashes(*body) if type_name == "aae.hashes" and len(body) == 5 else None
                if bad is not None:
                    with pytest.raises(RingKVError):
                        await t.request(cluster.configs[0].listen, bad, 0.5)
            await t.stop()
            good = await call_local(handle, AaeHashes("default", 10, 0, list(range(32)), []))
            stats = await run_repair(client, cluster.configs[0].listen)
            value = (await client.keyspace("default").aget(b"k")).values
            return errors, good, stats, value
        finally:
            await cluster.stop()

    errors, good, stats, value = run_virtual(main())
    assert all(got is want or issubclass(got, want) for got, want in errors) and len(errors) == 8, errors
    assert len(good.hashes) == 32
    assert stats["errors"] == 0 and value == [b"v"]


def test_malformed_messages_over_real_sockets(tmp_path):
    """A real node on loopback answers malformed aae frames with ProtocolError and keeps serving."""

    async def main():
        server = NodeServer(NodeConfig(data_dir=str(tmp_path / "n"), listen="tcp://127.0.0.1:0", vnodes=8, repair=RepairConfig(interval=0)))
        await server.start()
        client = Transport(None, None)
        await client.start()
        try:
            addr = server.address
            kinds = []
            for msg in [
                AaeHashes("default", 10, 0, ["x"], []),  # type: ignore[list-item]
                AaeHashes("default", 10, 1, [1], [[9, 3]]),
                AaeKeys("default", 0, TOP, None, 0),
                AaePurge("default", [[b"k"]]),
                AaeRepair(7),  # type: ignore[arg-type]
            ]:
                try:
                    await client.request(addr, msg, 2.0)
                    kinds.append(None)
                except RingKVError as e:
                    kinds.append(type(e))
            ok = await client.request(addr, AaeHashes("default", 10, 0, [0, 1], []), 2.0)
            stats = await run_repair(client, addr, "default", timeout=5.0)
            return kinds, ok, stats
        finally:
            await client.stop()
            await server.stop()

    kinds, ok, stats = asyncio.run(main())
    assert kinds == [ProtocolError] * 5
    assert len(ok.hashes) == 2  # type: ignore[attr-defined]
    assert stats["exchanges"] == 0 and stats["errors"] == 0  # a single node has no peers
