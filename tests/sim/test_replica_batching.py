"""Replica requests of one loop turn travel as one message, and each still fails alone."""

from __future__ import annotations

import asyncio

from ringkv.codec import encode_record
from ringkv.quorum.dvv import DVVSet
from ringkv.quorum.messages import ReplicaPutMany, ReplicaReadMany
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual


def test_concurrent_requests_share_replica_messages_and_all_land(tmp_path):
    from ringkv.quorum.messages import KvGet, KvPut

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=3).start()
        try:
            await cluster.run_for(5)  # every member up
            c = cluster.servers[0].coordinator
            deadline = asyncio.get_running_loop().time() + 5
            before = dict(c.stats)
            # one loop turn's worth of writes and reads, as a busy coordinator sees them
            await asyncio.gather(*(c.put(KvPut("default", b"k%d" % i, b"v%d" % i, None, 3, None, ""), deadline) for i in range(100)))
            got = await asyncio.gather(*(c.get(KvGet("default", b"k%d" % i, 3), deadline) for i in range(100)))
            after = dict(c.stats)
            client = await cluster.client(1)
            seen = [(await client.keyspace("default").aget(b"k%d" % i, r=3)).value for i in range(100)]
            return [g.values for g in got], seen, before, after
        finally:
            await cluster.stop()

    values, seen, before, after = run_virtual(main())
    assert values == [[b"v%d" % i] for i in range(100)]
    assert seen == [b"v%d" % i for i in range(100)]
    requests = after["replica_requests"] - before["replica_requests"]
    messages = after["replica_messages"] - before["replica_messages"]
    assert requests == 2 * 100 * 2, "every put (W=3) and every R=3 read reaches the two other replicas"
    assert messages <= 4, f"{requests} replica requests in {messages} messages: not coalesced"


def test_a_bad_record_in_a_batch_fails_alone(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=4).start()
        try:
            c = cluster.servers[0].coordinator
            good = encode_record(DVVSet({"a.1": 1}, [("a.1", 1, 5, b"good")]))
            done = c.on_replica_put_many(ReplicaPutMany([
                ["default", b"ok-1", good, None],
                ["no_such_keyspace", b"x", good, None],
                ["default", b"corrupt", b"\x02\x00\x00\x00\x09junk", None],
                ["default", b"ok-2", good, None],
            ]))
            read = c.on_replica_read_many(ReplicaReadMany([["default", b"ok-1"], ["nope", b"x"], ["default", b"ok-2"], ["default", b"corrupt"]]))
            return done.failed, read.records, read.failed
        finally:
            await cluster.stop()

    failed, records, read_failed = run_virtual(main())
    assert sorted(i for i, _, _ in failed) == [1, 2]
    assert {code for _, code, _ in failed} <= {"keyspace_not_found", "corrupt_record"}
    assert records[0] is not None and records[2] is not None and records[3] is None
    assert [i for i, _, _ in read_failed] == [1]


def test_a_turn_of_big_records_is_split_and_an_overflowing_batch_is_resent_one_by_one():
    from ringkv.errors import TooLarge
    from ringkv.quorum import batching
    from ringkv.quorum.batching import ReplicaBatcher
    from ringkv.quorum.messages import ReplicaPut, ReplicaRead

    sent: list = []

    async def main():
        loop = asyncio.get_running_loop()

        def request_future(addr, msg, budget):
            sent.append((type(msg).__name__, len(getattr(msg, "records", getattr(msg, "keys", [None])))))
            fut = loop.create_future()
            if type(msg).__name__ == "ReplicaReadMany":
                fut.set_exception(TooLarge("reply too large"))  # as a replica whose answer overflows a frame says
            else:
                fut.set_result(msg)
            return fut

        b = ReplicaBatcher(request_future, lambda node: "addr", {})
        deadline = loop.time() + 5
        big = b"x" * (batching.MAX_BYTES // 3 + 1)
        puts = [b.request("n1", ReplicaPut("ks", b"k%d" % i, big), deadline) for i in range(7)]
        reads = [b.request("n1", ReplicaRead("ks", b"k%d" % i), deadline) for i in range(3)]
        await asyncio.gather(*puts)
        got = await asyncio.gather(*reads, return_exceptions=True)
        return [not isinstance(g, BaseException) for g in got]

    ok = asyncio.run(main())
    put_messages = [n for kind, n in sent if kind in ("ReplicaPut", "ReplicaPutMany")]
    assert sum(put_messages) == 7 and max(put_messages) <= 2, "big records must not share one oversized message"
    assert ("ReplicaReadMany", 3) in sent and sent.count(("ReplicaRead", 1)) == 3, "an overflowing batch is resent one by one"
    assert ok == [True, True, True]
