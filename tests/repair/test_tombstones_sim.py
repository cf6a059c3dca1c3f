"""Tombstone GC on a simulated 5-node cluster (real node code, virtual time, seeded).

A tombstone is purged from every node once anti-entropy has seen it on all
replicas and the grace period has passed — not before, not while a replica
is down or unreachable, not while anyone holds a hint for the key — and a
deleted key never comes back: not through repair, hinted handoff, or a
stale replica that missed the delete.
"""

from __future__ import annotations

import os

import pytest

from ringkv.codec import decode_record
from ringkv.quorum.aae import record_digest
from ringkv.repair import RepairConfig, run_repair
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual

SEEDS = [int(s) for s in os.environ.get("RINGKV_SIM_SEEDS", "1,2").split(",")]
GRACE = 20.0
INTERVAL = 2.0
CF = "ks.default"


async def _started(root: str, seed: int, n: int = 5) -> SimCluster:
    cluster = await SimCluster(root, n, seed=seed, repair=RepairConfig(interval=INTERVAL, tombstone_grace=GRACE)).start()

    def settled() -> bool:
        servers = [s for s in cluster.servers if s is not None]
        return all(len(s.ring) == n and s.ring == servers[0].ring and s.elastic.state == "idle" for s in servers)  # type: ignore[union-attr]

    await cluster.wait_for(settled, timeout=60)
    IDS[id(cluster)] = [s.node_id for s in cluster.servers]  # type: ignore[union-attr]
    return cluster


#: node ids of each started cluster, by position (crashed nodes included)
IDS: dict[int, list[str]] = {}


def _skey(cluster: SimCluster, key: bytes) -> bytes:
    server = next(s for s in cluster.servers if s is not None)
    return server.coordinator.table("default").skey(key)  # type: ignore[union-attr]


def _copies(cluster: SimCluster, key: bytes) -> dict[int, object]:
    """What every running node's ks.default holds for ``key`` (decoded), absent ones left out."""
    skey = _skey(cluster, key)
    out = {}
    for i, s in enumerate(cluster.servers):
        if s is not None:
            raw = s.storage.get(CF, skey)  # type: ignore[union-attr]
            if raw is not None:
                out[i] = decode_record(raw)
    return out


def _replicas(cluster: SimCluster, key: bytes) -> list[int]:
    idx = {n: i for i, n in enumerate(IDS[id(cluster)])}
    ring = next(s for s in cluster.servers if s is not None).ring  # type: ignore[union-attr]
    return [idx[n] for n in ring.preference_list(key, 3)]


def _no_live_value(cluster: SimCluster, keys) -> None:
    """No node holds a value for any of ``keys`` (tombstones, or nothing)."""
    for k in keys:
        for i, rec in _copies(cluster, k).items():
            assert rec.is_deleted, f"node {i} holds a live value for deleted key {k!r}: {rec}"  # type: ignore[attr-defined]


def _trees_right(cluster: SimCluster) -> None:
    for s in cluster.servers:
        if s is not None:
            trees = s.repair.trees  # type: ignore[union-attr]
            assert trees.trees[CF].leaf == trees.recompute(CF)


def test_purged_after_anti_entropy_and_grace_but_not_before(tmp_path):
    async def main():
        cluster = await _started(str(tmp_path), seed=3)
        try:
            client = await cluster.client(0)
            ks = client.keyspace("default")
            keys = [b"t-%d" % i for i in range(40)]
            for k in keys:
                await ks.aput(k, b"v", w=3)
            gone, kept = keys[:20], keys[20:]
            for k in gone:
                await ks.adelete(k, w=3)
            await cluster.run_for(GRACE / 2)
            early = {k: _copies(cluster, k) for k in gone}
            await cluster.run_for(GRACE + 4 * INTERVAL)
            late = {k: _copies(cluster, k) for k in gone}
            live = {k: _copies(cluster, k) for k in kept}
            reads = [await ks.aget(k, r=3) for k in gone]
            purged = sum(s.repair.totals["tombstones_purged"] for s in cluster.servers)  # type: ignore[union-attr]
            tombs = sum(1 for s in cluster.servers for k in gone if s.repair.trees.tomb(CF, _skey(cluster, k)) is not None)  # type: ignore[union-attr]
            _trees_right(cluster)
            return early, late, live, reads, purged, tombs, {k: _replicas(cluster, k) for k in keys}
        finally:
            await cluster.stop()

    early, late, live, reads, purged, tombs, replicas = run_virtual(main())
    for k, copies in early.items():
        assert set(replicas[k]) <= set(copies), f"{k!r} purged before its grace period"
        assert all(r.is_deleted for r in copies.values())
    assert all(not copies for copies in late.values()), "tombstones left after grace"
    assert purged == 20 and tombs == 0
    assert all(r is None for r in reads)
    for k, copies in live.items():
        assert set(replicas[k]) <= set(copies) and all(r.values == [b"v"] for r in copies.values())


@pytest.mark.parametrize("fault", ["crash", "partition"])
def test_replica_that_missed_the_delete_blocks_the_purge_and_never_resurrects(tmp_path, fault):
    victim = 2

    async def main():
        cluster = await _started(str(tmp_path), seed=5)
        try:
            client = await cluster.client(0)
            ks = client.keyspace("default")
            keys = [b"s-%d" % i for i in range(40)]
            for k in keys:
                await ks.aput(k, b"old", w=3)
            mine = [k for k in keys if victim in _replicas(cluster, k)]
            if fault == "crash":
                await cluster.crash(victim)
            else:
                cluster.partition([victim], [i for i in range(5) if i != victim])
            await cluster.run_for(6)  # everyone sees it down
            for k in mine:
                await ks.adelete(k, w=2)
            await cluster.run_for(2 * GRACE)
            # the victim still holds the old value: nobody may purge yet
            during = {k: _copies(cluster, k) for k in mine}
            blocked = sum(s.repair.totals["gc_blocked"] for s in cluster.servers if s is not None)  # type: ignore[union-attr]
            if fault == "crash":
                await cluster.restart(victim)
            else:
                cluster.heal()
            stale = {k: _copies(cluster, k).get(victim) for k in mine}
            # from here on, the old value must never show up again
            resurrected, soon = [], None
            for step in range(int((GRACE + 8 * INTERVAL) / 2)):
                await cluster.run_for(2)
                for k in mine:
                    res = await ks.aget(k, r=2)
                    if res is not None:
                        resurrected.append((k, res.values))
                if step == int(GRACE / 4):
                    # the victim got the tombstone only now: its own grace period starts over
                    soon = {k: _copies(cluster, k) for k in mine}
            after = {k: _copies(cluster, k) for k in mine}
            # and one more on-demand pass from every node brings nothing back
            for i in range(5):
                await run_repair(client, cluster.configs[i].listen)
            final = {k: _copies(cluster, k) for k in mine}
            _trees_right(cluster)
            return mine, during, blocked, stale, soon, resurrected, after, final
        finally:
            await cluster.stop()

    mine, during, blocked, stale, soon, resurrected, after, final = run_virtual(main())
    assert mine
    for k, copies in during.items():
        live_replicas = [i for i in copies if i != victim]
        assert len(live_replicas) >= 2 and all(copies[i].is_deleted for i in live_replicas), f"{k!r} purged while a replica missed the delete"
    assert blocked > 0
    if fault == "crash":
        assert all(r is not None and r.values == [b"old"] for r in stale.values()), "the victim should restart with its old values"
    assert not resurrected, f"deleted keys came back: {resurrected[:3]}"
    for k, copies in soon.items():
        assert victim in copies and copies[victim].is_deleted, f"{k!r} purged less than a grace period after the victim got its tombstone"
    assert all(not copies for copies in after.values()), "tombstones were not purged once every replica had them"
    assert all(not copies for copies in final.values())


def test_pending_hints_anywhere_block_the_purge(tmp_path):
    async def main():
        cluster = await _started(str(tmp_path), seed=6)
        try:
            client = await cluster.client(0)
            ks = client.keyspace("default")
            keys = [b"h-%d" % i for i in range(10)]
            for k in keys:
                await ks.aput(k, b"v", w=3)
                await ks.adelete(k, w=3)
            # a hint for the key on a replica that is not the GC initiator (half the
            # keys), or on a node that is no replica at all (the other half), for a
            # member that never answers
            for n, k in enumerate(keys):
                reps = _replicas(cluster, k)
                outsider = next(i for i in range(5) if i not in reps)
                s = cluster.servers[reps[1] if n % 2 else outsider]
                b = s.storage.batch()  # type: ignore[union-attr]
                s.hints.add(b, "ghost-node", "default", k, 1)  # type: ignore[union-attr]
                s.storage.write(b)  # type: ignore[union-attr]
            await cluster.run_for(2 * GRACE)
            held = {k: _copies(cluster, k) for k in keys}
            purges = sum(s.repair.totals["tombstones_purged"] + s.repair.totals["replica_purges"] for s in cluster.servers)  # type: ignore[union-attr]
            for s in cluster.servers:
                s.hints.drop_target("ghost-node")  # type: ignore[union-attr]
            await cluster.run_for(GRACE / 2)
            after = {k: _copies(cluster, k) for k in keys}
            return held, purges, after, {k: _replicas(cluster, k) for k in keys}
        finally:
            await cluster.stop()

    held, purges, after, replicas = run_virtual(main())
    assert purges == 0, "a tombstone was purged on some node while a hint for it was pending"
    for k, copies in held.items():
        assert set(replicas[k]) <= set(copies), f"{k!r} purged while a hint for it was pending"
    assert all(not copies for copies in after.values())


def test_a_stale_hint_delivered_after_the_delete_does_not_resurrect(tmp_path):
    """A fallback holds the old value with a hint for a down owner, and is cut off
    while the key is deleted; when it comes back and delivers, the key stays deleted."""

    async def main():
        cluster = await _started(str(tmp_path), seed=8)
        try:
            client = await cluster.client(0)
            ks = client.keyspace("default")
            ring = cluster.servers[0].ring  # type: ignore[union-attr]
            idx = {n: i for i, n in enumerate(IDS[id(cluster)])}
            key = next(b"r-%d" % i for i in range(100) if idx[ring.preference_list(b"r-%d" % i, 5)[0]] != 0)
            walk = [idx[n] for n in ring.preference_list(key, 5)]
            owner, fallback = walk[2], walk[3]
            await cluster.crash(owner)
            await cluster.run_for(6)
            await ks.aput(key, b"stale", w=2)
            await cluster.run_for(0.2)
            hinted = cluster.servers[fallback].hints.pending()  # type: ignore[union-attr]
            # the fallback is cut off before it can hand the old value over
            cluster.partition([fallback], [i for i in range(5) if i != fallback])
            await cluster.run_for(6)
            await ks.adelete(key, w=2)
            await cluster.restart(owner)
            await cluster.run_for(2 * GRACE)
            during = _copies(cluster, key)
            cluster.heal()
            seen = []
            for _ in range(int((2 * GRACE + 10 * INTERVAL) / 2)):
                await cluster.run_for(2)
                res = await ks.aget(key, r=2)
                if res is not None:
                    seen.append(res.values)
                for i, rec in _copies(cluster, key).items():
                    if i in walk[:3] and not rec.is_deleted:
                        seen.append((i, rec.values))
            after = _copies(cluster, key)
            absorbed = sum(s.repair.totals["foreign_absorbed"] for s in cluster.servers)  # type: ignore[union-attr]
            return walk, IDS[id(cluster)][owner], fallback, hinted, during, seen, after, absorbed
        finally:
            await cluster.stop()

    walk, owner_id, fallback, hinted, during, seen, after, absorbed = run_virtual(main())
    assert owner_id in hinted, "the fallback should hold a hint for the down owner"
    assert set(walk[:3]) <= set(during) and all(during[i].is_deleted for i in walk[:3]), "purged while the fallback was away"
    assert not during[fallback].is_deleted  # the fallback still has the old value
    assert not seen, f"the deleted value came back: {seen[:3]}"
    assert not after, f"copies left after GC: {after}"
    assert absorbed >= 1  # the fallback's old copy was merged away before the purge


def test_digest_check_of_a_purge_request(tmp_path):
    """A replica purges only the exact tombstone it was asked to (a newer write survives)."""

    async def main():
        cluster = await _started(str(tmp_path), seed=9)
        try:
            client = await cluster.client(0)
            ks = client.keyspace("default")
            await ks.aput(b"p", b"v", w=3)
            await ks.adelete(b"p", w=3)
            skey = _skey(cluster, b"p")
            i = _replicas(cluster, b"p")[0]
            s = cluster.servers[i]
            raw = s.storage.get(CF, skey)  # type: ignore[union-attr]
            digest = record_digest(skey, raw)[0].to_bytes(16, "big")
            from ringkv.quorum.aae_messages import AaePurge

            early = await client.call(AaePurge("default", [[b"p", digest]]), addr=cluster.configs[i].listen)
            await cluster.run_for(GRACE + 1)  # periodic GC may purge it meanwhile: make it come back as a value
            await ks.aput(b"p", b"new", w=3)
            late = await client.call(AaePurge("default", [[b"p", digest]]), addr=cluster.configs[i].listen)
            value = (await ks.aget(b"p", r=3)).values
            return early.purged, late.purged, value  # type: ignore[attr-defined]
        finally:
            await cluster.stop()

    early, late, value = run_virtual(main())
    assert early == 0  # within the grace period
    assert late == 0  # a different record now
    assert value == [b"new"]
