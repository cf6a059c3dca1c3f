"""Writes whose copies the client sends (``kv.written``, ``kv.write_many``, ``kv.replicate``), in the simulator.

The client may only report a write done once W replicas hold it, and a
copy that fails (at once, or after the write was reported done) must end
as a hint on the coordinator, exactly as when the coordinator sends the
copies itself.
"""

from __future__ import annotations

import asyncio

from ringkv.errors import QuorumError, Unavailable
from ringkv.quorum.messages import KvDone, KvPut, KvReplicate, KvWriteMany, KvWritten, LocalGet, ReplicaPutManyDone
from ringkv.ring import Ring
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual


async def _cluster(tmp_path, **options):
    cluster = await SimCluster(str(tmp_path), 3, seed=7, **options).start()
    await cluster.wait_all_up()
    client = await cluster.client(0, timeout=2.0)
    await client.akeyspace_create("data", n=3, r=2, w=2)
    return cluster, client


def _silence(cluster, client, addr: str) -> None:
    """The node at ``addr`` hears nobody and nobody hears it (not yet seen as down)."""
    cluster.net.partition({c.listen for c in cluster.configs if c.listen != addr} | {client._transport.address}, {addr})


def _stat(cluster, name: str) -> int:
    return sum(s.coordinator.stats[name] for s in cluster.servers if s is not None)


async def _holders(cluster, client, key: bytes, value: bytes) -> int:
    """How many running replicas store ``value`` for ``key``."""
    count = 0
    for i in cluster.running():
        reply = await client.call(LocalGet("data", key), addr=cluster.configs[i].listen)
        if reply.record is not None and value in reply.record:
            count += 1
    return count


async def _until(cluster, check, timeout: float = 30.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return True
        await cluster.run_for(0.2)
    return await check()


def test_the_client_copies_writes_to_every_replica_and_reads_them_back(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            ks = client.keyspace("data")
            for i in range(30):
                await ks.aput(b"k%d" % i, b"v%d" % i)
            at_return = [await _holders(cluster, client, b"k%d" % i, b"v%d" % i) for i in range(30)]
            everywhere = await _until(cluster, lambda: _all_three(cluster, client))
            got = await ks.aget(b"k7")
            await ks.aput(b"k7", b"second", got.context)
            second = await ks.aget(b"k7")
            await ks.adelete(b"k7", second.context)
            deleted = await ks.aget(b"k7")
            return at_return, everywhere, second, deleted, _stat(cluster, "client_fanouts"), _stat(cluster, "client_copies"), dict(client.writes.stats)
        finally:
            await cluster.stop()

    async def _all_three(cluster, client):
        return all([await _holders(cluster, client, b"k%d" % i, b"v%d" % i) == 3 for i in range(30)])

    at_return, everywhere, second, deleted, fanouts, copies, stats = run_virtual(main())
    assert min(at_return) >= 2  # W=2 held when the put returned
    assert everywhere
    assert second.values == [b"second"]  # the context made it a successor, not a sibling
    assert deleted is None
    assert fanouts >= 32 and copies >= 2 * 32
    assert stats["copied"] >= 32 and stats["handed_back"] == 0


def test_a_copy_to_a_silent_replica_ends_as_a_hint_and_reaches_it_after_restart(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path, hint_interval=0.5)
        try:
            ks = client.keyspace("data")
            await ks.aput(b"k", b"before")
            lagging = cluster.configs[2].listen
            _silence(cluster, client, lagging)
            await ks.aput(b"k", b"during", (await ks.aget(b"k")).context)  # W=2: node 2 is silent, not yet down
            handed = await _until(cluster, lambda: _async(client.writes.stats["handed_back"] >= 1), timeout=10)
            hints = await _until(cluster, lambda: _async(sum(s.hints.total() for s in cluster.servers[:2]) > 0), timeout=10)
            cluster.heal()
            delivered = await _until(cluster, lambda: _has(client, lagging, b"during"), timeout=60)
            return handed, hints, delivered
        finally:
            await cluster.stop()

    handed, hints, delivered = run_virtual(main())
    assert handed, "the copy that failed after the write was done must go back to the coordinator"
    assert hints, "the coordinator must hold a hint for the copy that failed"
    assert delivered


def test_w_equal_n_with_a_silent_replica_fails_with_its_acks_and_keeps_the_write(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            ks = client.keyspace("data")
            await ks.aput(b"k", b"v1")
            lagging = cluster.configs[2].listen
            _silence(cluster, client, lagging)
            ctx = (await ks.aget(b"k")).context
            error = None
            try:
                await ks.aput(b"k", b"v2", ctx, w=3)
            except QuorumError as exc:
                error = exc
            kept = await ks.aget(b"k")
            return error, kept
        finally:
            await cluster.stop()

    error, kept = run_virtual(main())
    assert isinstance(error, QuorumError) and (error.acks, error.required) == (2, 3)
    assert kept.values == [b"v2"]  # nothing already written is undone


def test_a_coordinator_answers_kv_done_when_the_client_ring_differs_and_kv_replicate_copies_a_record(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            coord = cluster.servers[0]
            addr = cluster.configs[0].listen
            key = next(b"key%d" % i for i in range(1000) if coord.walk(b"key%d" % i)[0] == coord.node_id)
            real = client.ring()
            other = Ring({m: [t ^ 1 for t in real.tokens_of(m)] for m in real.members}).digest
            classic = await client.call(KvPut("data", key, b"value-alpha", None, None, None, "r1", False, other), addr=addr, idempotent=False)
            written = await client.call(KvPut("data", key, b"value-bravo", None, None, None, "r2", False, real.digest), addr=addr, idempotent=False)
            alone = await _holders(cluster, client, key, b"value-bravo")  # nobody copied it yet
            done = await client.call(KvReplicate("data", key, written.record, 3), addr=addr)
            copied = await _holders(cluster, client, key, b"value-bravo")
            retry = await client.call(KvPut("data", key, b"value-bravo", None, None, None, "r2", False, real.digest), addr=addr, idempotent=False)
            return classic, written, alone, done, copied, retry
        finally:
            await cluster.stop()

    classic, written, alone, done, copied, retry = run_virtual(main())
    assert isinstance(classic, KvDone) and classic.acks >= 2
    assert isinstance(written, KvWritten) and alone == 1
    assert isinstance(done, KvDone) and done.acks == 3 and copied == 3
    assert isinstance(retry, KvWritten) and retry.record == written.record  # a retried request id: the same record, no new dot


async def _async(value):
    return value


async def _has(client, addr: str, value: bytes) -> bool:
    reply = await client.call(LocalGet("data", b"k"), addr=addr)
    return reply.record is not None and value in reply.record


def test_w_follows_the_coordinator_when_the_clients_keyspace_settings_are_out_of_date(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            other = await cluster.client(1)
            await client.keyspace("data").aput(b"warm", b"x")  # the client now knows data as n=3 w=2
            await other.akeyspace_drop("data")
            await other.akeyspace_create("data", n=3, r=1, w=3)
            await client.keyspace("data").aput(b"k", b"value-under-w3")
            holders = await _holders(cluster, client, b"k", b"value-under-w3")
            silent = cluster.configs[2].listen
            _silence(cluster, client, silent)
            try:
                await client.keyspace("data").aput(b"k2", b"value-two")
            except QuorumError as exc:
                return holders, exc
            return holders, None
        finally:
            await cluster.stop()

    holders, error = run_virtual(main())
    assert holders == 3  # W=3 means three copies when the put returns
    # and a silent third replica fails it, although the client last knew the keyspace with W=2
    assert isinstance(error, QuorumError) and (error.acks, error.required) == (2, 3)


def test_a_replica_that_refuses_its_copy_still_gets_the_write_through_the_coordinator(tmp_path, monkeypatch):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            refusing = cluster.servers[2]

            def refuse(msg):
                raise Unavailable("not now")

            monkeypatch.setattr(refusing, "_on_write_many", refuse)
            ks = client.keyspace("data")
            for i in range(20):
                await ks.aput(b"k%d" % i, b"value-%d" % i)
            lagging = cluster.configs[2].listen

            async def all_there():
                for i in range(20):
                    reply = await client.call(LocalGet("data", b"k%d" % i), addr=lagging)
                    if reply.record is None or b"value-%d" % i not in reply.record:
                        return False
                return True

            ring = client.ring()
            expected = sum(ring.preference_list(b"k%d" % i, 3)[0] != refusing.node_id for i in range(20))
            return await _until(cluster, all_there, timeout=3), client.writes.stats["handed_back"], expected
        finally:
            await cluster.stop()

    everywhere, handed, expected = run_virtual(main())
    assert everywhere, "a refused copy must reach its replica through the coordinator"
    assert handed == expected > 0  # every write node 2 did not coordinate itself went back to its coordinator


def test_a_copy_refused_before_w_is_reached_is_still_handed_back():
    from ringkv.client_writes import _Copy

    async def main():
        handed = []

        class Owner:
            def hand_back_later(self, copy):
                handed.append(copy)

        copy = _Copy(Owner(), "data", b"k", b"rec", 2, "c", 1, asyncio.get_running_loop().create_future())
        copy.waiting = 2
        copy.fail(Unavailable("refused"))  # W still reachable through the other replica
        assert not copy.out.done()
        copy.acked()
        return copy.out.done() and copy.out.exception() is None, copy.missed, handed

    done, missed, handed = asyncio.run(main())
    assert done and missed and not handed  # DirectWrites.copy hands it back once the put is answered


def test_write_many_refuses_during_owner_changes_and_checks_its_input(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            node = cluster.servers[1]
            addr = cluster.configs[1].listen
            digest = client.ring().digest
            table = [["data", 3, 2, 2, False]]
            record = (await client.call(KvPut("data", b"k", b"value-x", None, None, None, "r1", False, None), b"k", idempotent=False))
            raw = (await client.call(LocalGet("data", b"k"), addr=addr)).record
            answers = {}
            cases = {
                "big key": KvWriteMany(digest, table, [["data", b"x" * (1 << 20), raw], ["data", b"k", raw]]),
                "no settings": KvWriteMany(digest, [], [["data", b"k", raw]]),
                "corrupt": KvWriteMany(digest, table, [["data", b"k", b"\x07garbage"]]),
            }
            for name, msg in cases.items():
                try:
                    answers[name] = await client.call(msg, addr=addr)
                except Exception as exc:
                    answers[name] = exc
            node.future_ring = Ring({**node.ring.to_dict(), "joiner": [1, 2, 3]})
            try:
                answers["joining"] = await client.call(KvWriteMany(digest, table, [["data", b"k", raw]]), addr=addr)
            except Exception as exc:
                answers["joining"] = exc
            node.future_ring = node.ring
            still = await client.keyspace("data").aget(b"k")
            return record, answers, still
        finally:
            await cluster.stop()

    record, answers, still = run_virtual(main())
    assert isinstance(record, KvDone)
    big = answers["big key"]
    assert isinstance(big, ReplicaPutManyDone) and [f[0] for f in big.failed] == [0] and big.failed[0][1] == "too_large"
    assert isinstance(answers["no settings"], Unavailable)
    corrupt = answers["corrupt"]
    assert isinstance(corrupt, ReplicaPutManyDone) and [f[0] for f in corrupt.failed] == [0]
    assert isinstance(answers["joining"], Unavailable)
    assert still.value == b"value-x"  # nothing stored was harmed


def test_feed_appends_are_copied_by_the_client_to_every_replica_in_order(tmp_path):
    from ringkv.feeds.messages import FeedReplicaScan

    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            feed = client.keyspace("data").feed("events")
            ids = [await feed.aappend(b"entry-%d" % i) for i in range(25)]
            copied = client.writes.stats["copied"]
            fanouts = _stat(cluster, "client_fanouts")
            views = []
            for i in cluster.running():
                page = await client.call(FeedReplicaScan("data", b"events", None, False, 100), addr=cluster.configs[i].listen)
                views.append([k for k, _ in page.entries])
            listed = [e.id async for e in feed.aiterate()]
            return ids, copied, fanouts, views, listed
        finally:
            await cluster.stop()

    ids, copied, fanouts, views, listed = run_virtual(main())
    assert listed == ids == sorted(ids)  # one writer's appends keep their order
    assert copied == 25 and fanouts >= 25
    assert all(len(v) == 25 for v in views) and views[0] == views[1] == views[2]
