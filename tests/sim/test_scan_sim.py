"""Scanning a cluster keyspace (``keys()``/``items()``) on a simulated 5-node cluster."""

from __future__ import annotations

from ringkv.errors import QuorumError
from ringkv.hashing import hash64_bytes
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual


async def _items(ks, r=None):
    return [(k, res.values) async for k, res in ks.aitems(r=r)]


def test_scan_returns_every_live_key_once_in_hash_order_through_faults(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 5, seed=5).start()
        try:
            client = await cluster.client(0)
            await client.akeyspace_create("scan", n=3, r=2, w=2)
            ks = client.keyspace("scan")
            live = {}
            for i in range(1200):
                key = b"key-%04d" % i
                await ks.aput(key, b"v%d" % i)
                live[key] = [b"v%d" % i]
            for i in range(0, 1200, 7):  # deletes leave tombstones that a scan must skip
                key = b"key-%04d" % i
                await ks.adelete(key, (await ks.aget(key)).context)
                del live[key]
            await ks.aput(b"twins", b"0")
            ctx = (await ks.aget(b"twins")).context
            await ks.aput(b"twins", b"a", ctx)
            await ks.aput(b"twins", b"b", ctx)  # the same stale context: concurrent, kept as siblings
            full = await _items(ks)
            # one replica loses every record; R=2 scans still see all of them
            victim = cluster.servers[1]
            cf = victim.storage.cf("ks.scan")
            for k, _ in list(victim.storage.scan("ks.scan")):
                cf.delete(k)
            after_wipe = await _items(ks)
            cluster.partition([2], [0, 1, 3, 4])
            await cluster.run_for(8)  # node 2 is seen down
            partitioned = await _items(ks)
            try:
                await _items(ks, r=3)
                r3 = None
            except QuorumError as exc:
                r3 = exc
            return live, full, after_wipe, partitioned, r3
        finally:
            await cluster.stop()

    live, full, after_wipe, partitioned, r3 = run_virtual(main())
    keys = [k for k, _ in full]
    assert len(keys) == len(set(keys)), "a key came twice"
    assert keys == sorted(keys, key=lambda k: hash64_bytes(k) + k), "not in hash order"
    assert {k: v for k, v in full if k != b"twins"} == live
    assert sorted(dict(full)[b"twins"]) == [b"a", b"b"]
    assert after_wipe == full
    assert partitioned == full
    assert r3 is not None and r3.required == 3


def test_scan_of_an_empty_keyspace_and_bad_input(tmp_path):
    from ringkv.errors import BadRequest, NotFound, WrongType

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=6).start()
        try:
            client = await cluster.client(0)
            await client.akeyspace_create("empty", n=3, r=2, w=2)
            empty = await _items(client.keyspace("empty"))
            errors = []
            for bad in (lambda: _items(client.keyspace("nope")), lambda: _items(client.keyspace("empty"), r=5), lambda: _items(client.keyspace("empty"), r="2")):
                try:
                    await bad()
                except (BadRequest, NotFound, WrongType) as exc:
                    errors.append(type(exc).__name__)
            return empty, errors
        finally:
            await cluster.stop()

    empty, errors = run_virtual(main())
    assert empty == []
    assert len(errors) == 3
