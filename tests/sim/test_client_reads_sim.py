"""Gets the client coordinates itself (``kv.read_many``), in the simulator.

A client that knows the ring asks a key's replicas for their records and
merges R of them, as a coordinator would. These tests check that such reads
return what a coordinated ``kv.get`` returns (values, siblings, deletes),
that they repair stale replicas, and that whenever the client's view is
wrong or incomplete (an outdated ring, a keyspace dropped and created
again, a node that is down, bad input) the answer is still the right value
or the right typed error.
"""

from __future__ import annotations

import asyncio

import pytest

from ringkv.errors import NotFound, QuorumError, TooLarge
from ringkv.quorum.messages import KvGet, KvReadMany, ReplicaRecords
from ringkv.ring import Ring
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual


async def _cluster(tmp_path, **options):
    cluster = await SimCluster(str(tmp_path), 3, seed=5, **options).start()
    await cluster.wait_all_up()
    client = await cluster.client(0, timeout=2.0)
    await client.akeyspace_create("data", n=3, r=2, w=2)
    return cluster, client


def _client_reads(cluster) -> int:
    return sum(s.coordinator.stats["client_reads"] for s in cluster.servers if s is not None)


async def _coordinated(client, keyspace, key):
    """What a coordinator answers for ``key`` (the reference the client's own merge must match)."""
    reply = await client.call(KvGet(keyspace, key, None), key)
    return sorted(reply.values), reply.context


def test_direct_reads_match_coordinated_reads_for_values_siblings_and_deletes(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            ks = client.keyspace("data")
            for i in range(40):
                await ks.aput(b"k%d" % i, b"v%d" % i)
            await ks.aput(b"twin", b"0")
            ctx = (await ks.aget(b"twin")).context
            await ks.aput(b"twin", b"a", ctx)
            await ks.aput(b"twin", b"b", ctx)  # the same stale context: concurrent, kept as siblings
            await ks.aput(b"gone", b"x")
            got = await ks.aget(b"gone")
            await ks.adelete(b"gone", got.context)
            before = _client_reads(cluster)
            results = {i: await ks.aget(b"k%d" % i) for i in range(40)}
            twin = await ks.aget(b"twin")
            gone = await ks.aget(b"gone")
            missing = await ks.aget(b"never-written")
            served = _client_reads(cluster) - before
            reference = await _coordinated(client, "data", b"twin")
            return results, twin, gone, missing, served, reference, dict(client.reads.stats)
        finally:
            await cluster.stop()

    results, twin, gone, missing, served, reference, stats = run_virtual(main())
    assert all(results[i].value == b"v%d" % i for i in range(40))
    assert sorted(twin.values) == reference[0], (twin.values, reference)
    assert sorted(twin.values) == [b"a", b"b"]
    assert twin.context == reference[1]  # the same causal context a coordinator gives
    assert gone is None and missing is None
    assert served >= 2 * 43  # every get asked the replicas directly
    assert stats["fallback"] == 0 and stats["direct"] >= 43


def test_a_direct_read_repairs_the_replica_that_missed_a_write(tmp_path):
    async def main():
        # hints wait: only the read can bring the restarted replica up to date
        cluster, client = await _cluster(tmp_path, hint_interval=10_000.0)
        try:
            ks = client.keyspace("data")
            await ks.aput(b"k", b"old")
            await cluster.crash(2)
            got = await ks.aget(b"k")
            await ks.aput(b"k", b"new", got.context)
            await cluster.restart(2)
            await cluster.wait_all_up()
            await client.refresh()  # the client must see node 2 alive again to ask it
            assert len(client.live_members()[0]) == 3
            lagging = cluster.configs[2].listen
            stale_before = await ks.aget_local(b"k", node=lagging)
            read = await ks.aget(b"k")
            await cluster.wait_for(lambda: client.reads.stats["repairs"] >= 1, timeout=10)
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                after = await ks.aget_local(b"k", node=lagging)
                if after is not None and after.value == b"new" or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.1)
            return stale_before, read, after
        finally:
            await cluster.stop()

    stale_before, read, after = run_virtual(main())
    assert stale_before is not None and stale_before.value == b"old"
    assert read.value == b"new"
    assert after is not None and after.value == b"new"


def test_an_outdated_ring_or_keyspace_gets_the_coordinators_answer(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            other = await cluster.client(1)
            ks = client.keyspace("data")
            await ks.aput(b"k", b"v")
            assert (await ks.aget(b"k")).value == b"v"
            # an outdated ring: the nodes refuse to serve reads placed with it
            real = client.ring()
            client._ring = Ring({m: [t ^ 1 for t in real.tokens_of(m)] for m in real.members})
            before = _client_reads(cluster)
            with_old_ring = await ks.aget(b"k")
            refused = _client_reads(cluster) - before
            # the keyspace dropped and created again, with other settings, by another client
            await other.akeyspace_drop("data")
            await other.akeyspace_create("data", n=2, r=1, w=1)
            await other.keyspace("data").aput(b"k", b"second life")
            after_recreate = await ks.aget(b"k")
            unknown = None
            try:
                await client.keyspace("nope").aget(b"k")
            except NotFound as exc:
                unknown = exc
            too_large = None
            try:
                await ks.aget(b"x" * (2 << 20))
            except TooLarge as exc:
                too_large = exc
            return with_old_ring, refused, after_recreate, unknown, too_large, dict(client.reads.stats)
        finally:
            await cluster.stop()

    with_old_ring, refused, after_recreate, unknown, too_large, stats = run_virtual(main())
    assert with_old_ring.value == b"v"
    assert refused == 0  # no node answered with records for a ring it does not have
    assert after_recreate.value == b"second life"
    assert unknown is not None and too_large is not None
    assert stats["fallback"] >= 2


def test_a_silent_node_leaves_r_answers_and_too_few_live_replicas_give_a_quorum_error(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            ks = client.keyspace("data")
            for i in range(10):
                await ks.aput(b"k%d" % i, b"v%d" % i)
            await cluster.crash(2)  # not yet known as down: its share of each read goes unanswered
            reads = [await ks.aget(b"k%d" % i) for i in range(10)]
            direct = client.reads.stats["direct"]
            await cluster.crash(1)
            n0 = cluster.servers[0]
            ids = [cluster.configs[i].node_id for i in (1, 2)]
            await cluster.wait_for(lambda: not any(n0.is_alive(m) for m in ids), timeout=60)
            await client.refresh()  # the client learns both are down: too few replicas to read itself
            try:
                await ks.aget(b"k0")
            except QuorumError as exc:
                return reads, direct, exc
            return reads, direct, None
        finally:
            await cluster.stop()

    reads, direct, error = run_virtual(main())
    assert [r.value for r in reads] == [b"v%d" % i for i in range(10)]
    assert direct >= 10
    assert isinstance(error, QuorumError)


@pytest.mark.parametrize("body", [
    [b"\x00" * 65, [], []],
    [b"", [["data", 3, 2, 2]], []],
    [b"", [["data", "3", 2, 2, False]], []],
    [b"", [["data", 3, 2, 2, 0]], []],
    [b"", [], [["data"]]],
    [b"", [], [["data", "not bytes"]]],
    [b"", [], "keys"],
])
def test_malformed_read_many_is_a_protocol_error(body):
    from ringkv.errors import ProtocolError

    with pytest.raises(ProtocolError):
        KvReadMany.from_body(body)


def test_a_node_answers_read_many_only_for_its_own_ring_and_keyspaces(tmp_path):
    async def main():
        cluster, client = await _cluster(tmp_path)
        try:
            await client.keyspace("data").aput(b"k", b"v")
            addr = cluster.configs[0].listen
            digest = client.ring().digest
            answers = {}
            for name, msg in {
                "ok": KvReadMany(digest, [["data", 3, 2, 2, False]], [["data", b"k"]]),
                "ring": KvReadMany(b"other", [["data", 3, 2, 2, False]], [["data", b"k"]]),
                "settings": KvReadMany(digest, [["data", 3, 1, 2, False]], [["data", b"k"]]),
                "unknown": KvReadMany(digest, [["nope", 3, 2, 2, False]], [["nope", b"k"]]),
            }.items():
                try:
                    answers[name] = await client.call(msg, addr=addr)
                except Exception as exc:  # the typed error the node sent
                    answers[name] = exc
            return answers
        finally:
            await cluster.stop()

    answers = run_virtual(main())
    assert isinstance(answers["ok"], ReplicaRecords) and answers["ok"].records[0] is not None
    from ringkv.errors import Unavailable

    for name in ("ring", "settings", "unknown"):
        assert isinstance(answers[name], Unavailable), name


def test_an_answer_that_breaks_one_request_fails_it_alone():
    from ringkv.client_reads import deliver_each
    from ringkv.errors import ProtocolError

    class Request:
        def __init__(self):
            self.failed = None
            self.answered = None

        def fail(self, exc):
            self.failed = exc

    def ok(i, item):
        if i == 1:
            raise TypeError("a record no merge can use")
        item[0].answered = i

    items = [(Request(), "n0"), (Request(), "n1"), (Request(), "n2"), (Request(), "n3")]
    deliver_each(items, [[3, "not_found", "no such keyspace"]], ok)
    assert items[0][0].answered == 0 and items[2][0].answered == 2
    assert isinstance(items[1][0].failed, ProtocolError)
    assert isinstance(items[3][0].failed, NotFound)
