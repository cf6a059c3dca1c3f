"""Anti-entropy on a simulated 5-node cluster (real node code, virtual time, seeded).

A replica whose data directory was wiped gets every key back from one
on-demand pass, or from the periodic passes alone within their period; and
replicas made divergent by writes on both sides of a partition converge to
the merge of what they held, with hinted handoff and read repair kept out
of the way.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import replace

import msgpack
import pytest

from ringkv.codec import decode_record
from ringkv.errors import RingKVError
from ringkv.quorum.dvv import sync
from ringkv.quorum.messages import KvPut, LocalGet
from ringkv.repair import RepairConfig, run_repair
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual
from ringkv.storage import Storage

SEEDS = [int(s) for s in os.environ.get("RINGKV_SIM_SEEDS", "1,2").split(",")]
VICTIM = 2


async def _local(client, cluster: SimCluster, i: int, table: str, key: bytes):
    """Replica ``i``'s own record of ``key`` (no quorum, no read repair)."""
    reply = await client.call(LocalGet(table, key), addr=cluster.configs[i].listen)
    return decode_record(reply.record) if reply.record is not None else None  # type: ignore[attr-defined]


async def _started(root: str, n: int = 5, **kw) -> SimCluster:
    """A started cluster whose every node is a full owner, as seen by every node."""
    cluster = await SimCluster(root, n, **kw).start()

    def settled() -> bool:
        servers = [s for s in cluster.servers if s is not None]
        return all(len(s.ring) == n and s.ring == servers[0].ring and s.elastic.state == "idle" for s in servers)  # type: ignore[union-attr]

    await cluster.wait_for(settled, timeout=60)
    return cluster


def _index(cluster: SimCluster) -> dict[str, int]:
    return {s.node_id: i for i, s in enumerate(cluster.servers) if s is not None}


async def _fill(cluster: SimCluster, client, nkeys: int):
    ks = client.keyspace("default")
    keys = [b"key-%d" % i for i in range(nkeys)]
    for k in keys:
        await ks.aput(k, b"value of " + k, w=3)
    feed = client.feed("events")
    entries = [await feed.aappend(b"event %d" % i) for i in range(40)]
    await cluster.run_for(2)  # the third copy of each feed append lands (W=2)
    return keys, entries


async def _wipe(cluster: SimCluster, i: int) -> str:
    """Crash node ``i``, delete its data directory, restart it with the same id and tokens."""
    server = cluster.servers[i]
    node_id, tokens = server.node_id, server.ring.tokens_of(server.node_id)  # type: ignore[union-attr]
    await cluster.crash(i)
    await cluster.run_for(5)  # the others see it down
    shutil.rmtree(cluster.configs[i].data_dir)
    cluster.configs[i] = replace(cluster.configs[i], node_id=node_id)
    # The node is meant to ask the seeds for its old tokens; seed them here so the
    # test does not depend on that handshake winning its race against gossip.
    storage = Storage(cluster.configs[i].data_dir)
    storage.meta_put(b"tokens", msgpack.packb(list(tokens)))
    storage.close()
    await cluster.restart(i)
    await cluster.wait_for(lambda: all(s.is_alive(node_id) for s in cluster.servers if s is not None), timeout=30)
    return node_id


def _feed_copies(cluster: SimCluster) -> list[set]:
    ring = cluster.servers[0].ring  # type: ignore[union-attr]
    idx = _index(cluster)
    return [{k for k, _ in cluster.servers[idx[n]].storage.scan("fd.default")} for n in ring.preference_list(b"events", 3)]  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", SEEDS)
def test_wiped_replica_is_restored_by_one_on_demand_pass(tmp_path, seed):
    async def main():
        cluster = await _started(str(tmp_path), seed=seed, repair=RepairConfig(interval=0))
        try:
            client = await cluster.client(0)
            keys, entries = await _fill(cluster, client, 300)
            ring = cluster.servers[0].ring  # type: ignore[union-attr]
            node_id = await _wipe(cluster, VICTIM)
            held = [k for k in keys if node_id in ring.preference_list(k, 3)]
            before = [await _local(client, cluster, VICTIM, "default", k) for k in held]
            assert held and all(r is None for r in before)  # the wipe took everything
            stats = await run_repair(client, cluster.configs[VICTIM].listen)
            after = [await _local(client, cluster, VICTIM, "default", k) for k in held]
            again = await run_repair(client, cluster.configs[VICTIM].listen)
            copies = _feed_copies(cluster)
            return stats, again, held, after, copies
        finally:
            await cluster.stop()

    stats, again, held, after, copies = run_virtual(main())
    assert all(r is not None and r.values == [b"value of " + k] for k, r in zip(held, after)), "a key was not restored"
    assert stats["keys_repaired"] >= len(held) and stats["segments_differing"] > 0 and stats["errors"] == 0, stats
    assert all(c == copies[0] for c in copies) and len(copies[0]) == 40, "feed entries not restored on every replica"
    assert again["keys_repaired"] == 0 and again["segments_differing"] == 0, again  # converged: nothing left to do
    assert set(stats) >= {"ranges_compared", "segments_differing", "keys_repaired", "tombstones_purged", "seconds"}


def test_periodic_anti_entropy_alone_restores_a_wiped_replica_within_its_period(tmp_path):
    interval, jitter = 5.0, 0.2

    async def main():
        cluster = await _started(str(tmp_path), seed=4, repair=RepairConfig(interval=interval, jitter=jitter))
        try:
            client = await cluster.client(0)
            keys, entries = await _fill(cluster, client, 200)
            ring = cluster.servers[0].ring  # type: ignore[union-attr]
            node_id = await _wipe(cluster, VICTIM)
            held = [k for k in keys if node_id in ring.preference_list(k, 3)]
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            missing = len(held)
            while missing and loop.time() - t0 < 4 * interval:
                await cluster.run_for(0.5)
                missing = sum(1 for k in held if cluster.servers[VICTIM].storage.get("ks.default", cluster.servers[VICTIM].coordinator.table("default").skey(k)) is None)  # type: ignore[union-attr]
            took = loop.time() - t0
            copies = _feed_copies(cluster)
            return missing, took, copies
        finally:
            await cluster.stop()

    missing, took, copies = run_virtual(main())
    assert missing == 0, f"{missing} keys still missing after {took:.1f}s"
    assert took <= interval * (1 + jitter) + 2.0, f"restored only after {took:.1f}s"
    assert all(c == copies[0] for c in copies) and len(copies[0]) == 40


@pytest.mark.parametrize("seed", SEEDS)
def test_replicas_divergent_after_a_partition_converge(tmp_path, seed):
    keys = [b"div-%d" % i for i in range(60)]

    async def main():
        cluster = await _started(str(tmp_path), seed=seed, repair=RepairConfig(interval=3.0))
        try:
            client = await cluster.client(0)
            ks = client.keyspace("default")
            for k in keys:
                await ks.aput(k, b"base", w=3)
            cluster.partition([0, 1], [2, 3, 4])
            await cluster.run_for(8)  # each side sees the other down
            acked = {0: 0, 1: 0}
            for side, node in ((0, 0), (1, 3)):
                for k in keys:
                    put = KvPut("default", k, b"side-%d" % side, None, 1, None, f"p{side}-{k.decode()}")
                    try:
                        await client.call(put, addr=cluster.configs[node].listen, idempotent=False)
                        acked[side] += 1
                    except RingKVError:
                        pass
            await cluster.run_for(1)
            # what every node holds at the end of the partition
            held = {k: [await _local(client, cluster, i, "default", k) for i in range(5)] for k in keys}
            ring = cluster.servers[0].ring  # type: ignore[union-attr]
            idx = _index(cluster)
            replicas = {k: [idx[n] for n in ring.preference_list(k, 3)] for k in keys}
            diverged = sum(1 for k in keys if len({repr(held[k][i]) for i in replicas[k]}) > 1)
            # keep hinted handoff out of it: forget every hint (the copies stay where they are)
            for s in cluster.servers:
                for target in list(s.hints.pending()):  # type: ignore[union-attr]
                    s.hints.drop_target(target)  # type: ignore[union-attr]
            before = sum(s.repair.totals["keys_repaired"] for s in cluster.servers)  # type: ignore[union-attr]
            cluster.heal()
            await cluster.run_for(15)
            final = {k: [await _local(client, cluster, i, "default", k) for i in replicas[k]] for k in keys}
            repaired = sum(s.repair.totals["keys_repaired"] for s in cluster.servers) - before  # type: ignore[union-attr]
            return acked, held, replicas, diverged, final, repaired
        finally:
            await cluster.stop()

    acked, held, replicas, diverged, final, repaired = run_virtual(main())
    assert acked[0] > 30 and acked[1] > 30, acked
    assert diverged > 20, "the partition did not make replicas diverge"
    assert repaired >= diverged
    for k in keys:
        recs = final[k]
        assert all(r == recs[0] for r in recs), f"replicas of {k!r} still differ: {recs}"
        replica_merge = None
        everything = None
        for i, rec in enumerate(held[k]):
            if rec is None:
                continue
            everything = sync(everything, rec)
            if i in replicas[k]:
                replica_merge = sync(replica_merge, rec)
        # nothing a replica held is lost, nothing that nobody held is invented
        assert sync(recs[0], replica_merge) == recs[0], k
        assert sync(recs[0], everything) == everything, k
    both = [k for k in keys if {b"side-0", b"side-1"} <= set(final[k][0].values)]
    assert both, "no key kept both sides' concurrent writes as siblings"


def test_keys_per_second_caps_a_big_repair(tmp_path):
    rate = 40.0

    async def main():
        cluster = await _started(str(tmp_path), seed=3, repair=RepairConfig(interval=0, keys_per_second=rate))
        try:
            client = await cluster.client(0)
            keys, _ = await _fill(cluster, client, 100)
            await _wipe(cluster, VICTIM)
            return await run_repair(client, cluster.configs[VICTIM].listen)
        finally:
            await cluster.stop()

    stats = run_virtual(main())
    assert stats["keys_repaired"] > 40
    assert stats["seconds"] >= (stats["keys_repaired"] - rate) / rate * 0.9, stats
