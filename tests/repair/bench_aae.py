"""Costs of anti-entropy (not a test; run ``python tests/repair/bench_aae.py``).

1. The hash-tree observer's overhead per write (LocalReplica.write with and
   without it).
2. An on-demand pass between two replicas of 100k keys each, on the
   simulated network (wall time is CPU; "seconds" in the stats is virtual):
   identical, 1% of keys differing, one side empty.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time

from ringkv.quorum.aae import Trees
from ringkv.quorum.dvv import DVVSet
from ringkv.quorum.replica import LocalReplica
from ringkv.repair import RepairConfig, run_repair
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual
from ringkv.storage import Storage

N_KEYS = int(os.environ.get("BENCH_KEYS", "100000"))


def bench_observer(root: str, n: int = 50_000) -> None:
    out = {}
    for mode in ("plain", "observed"):
        storage = Storage(os.path.join(root, mode))
        storage.create_cf("ks.b")
        replica = LocalReplica(storage, "n.1")
        if mode == "observed":
            trees = Trees(storage, 10, clock=time.time)
            trees.open()
            asyncio.run(trees.rebuild_stale())
            replica.observers.append(trees.observe)
        keys = [os.urandom(8) + b"user:%d" % i for i in range(n)]
        value = b"x" * 100
        t = time.perf_counter()
        for k in keys:
            replica.write("ks.b", k, value)
        first = time.perf_counter() - t
        t = time.perf_counter()
        for k in keys:
            replica.write("ks.b", k, value)  # overwrite: the observer digests old and new
        second = time.perf_counter() - t
        out[mode] = (first / n * 1e6, second / n * 1e6)
        storage.close()
    for mode, (a, b) in out.items():
        print(f"put {mode:9s}: insert {a:6.1f} µs, overwrite {b:6.1f} µs")
    print(f"observer overhead: insert {out['observed'][0] - out['plain'][0]:.1f} µs, overwrite {out['observed'][1] - out['plain'][1]:.1f} µs per put")


async def _pair(root: str):
    cluster = await SimCluster(root, 2, seed=1, repair=RepairConfig(interval=0, scan_chunk=512)).start()
    await cluster.wait_for(lambda: all(len(s.ring) == 2 and s.elastic.state == "idle" for s in cluster.servers), timeout=60)  # type: ignore[union-attr]
    return cluster


def bench_compare(root: str) -> None:
    async def main():
        cluster = await _pair(root)
        try:
            a, b = cluster.servers  # type: ignore[misc]
            table = a.coordinator.table("default")  # type: ignore[union-attr]
            t = time.perf_counter()
            for i in range(N_KEYS):
                key = b"user:%d" % i
                rec = DVVSet({"w.1": 1}, [("w.1", 1, 1 << 40, b"v" * 100)])
                a.coordinator.apply(table, key, rec)  # type: ignore[union-attr]
                if i % 100 or i >= N_KEYS // 2:
                    b.coordinator.apply(table, key, rec)  # type: ignore[union-attr]
                if i % 5000 == 0:
                    await asyncio.sleep(0)
            print(f"loaded {N_KEYS} keys on A, {N_KEYS - N_KEYS // 200} on B in {time.perf_counter() - t:.1f}s")
            client = await cluster.client(0, timeout=600)
            for label in ("0.5% of keys missing on B", "identical"):
                t = time.perf_counter()
                stats = await run_repair(client, cluster.configs[0].listen)
                print(f"{label:28s}: wall {time.perf_counter() - t:6.2f}s  {stats}")
            # B loses everything (tree-consistently), then one pass restores it
            await b.repair.drop_range("ks.default", 0, 2**64)  # type: ignore[union-attr]
            t = time.perf_counter()
            stats = await run_repair(client, cluster.configs[0].listen)
            print(f"{'B empty':28s}: wall {time.perf_counter() - t:6.2f}s  {stats}")
        finally:
            await cluster.stop()

    run_virtual(main())


def bench_vnodes(root: str) -> None:
    """5 nodes x 128 vnodes, N=3, replicas in sync: straddling segments cost scans once, then hit the cache."""

    async def main():
        cluster = await SimCluster(root, 5, seed=2, vnodes=128, repair=RepairConfig(interval=0, scan_chunk=512)).start()
        try:
            await cluster.wait_for(lambda: all(len(s.ring) == 5 and s.elastic.state == "idle" for s in cluster.servers), timeout=120)  # type: ignore[union-attr]
            servers = {s.node_id: s for s in cluster.servers}  # type: ignore[union-attr]
            ring = cluster.servers[0].ring  # type: ignore[union-attr]
            table = cluster.servers[0].coordinator.table("default")  # type: ignore[union-attr]
            rec = DVVSet({"w.1": 1}, [("w.1", 1, 1 << 40, b"v" * 100)])
            for i in range(N_KEYS):
                key = b"user:%d" % i
                for n in ring.preference_list(key, 3):
                    servers[n].coordinator.apply(table, key, rec)
                if i % 5000 == 0:
                    await asyncio.sleep(0)
            client = await cluster.client(0, timeout=600)
            for label in ("in sync, cold cache", "in sync, warm cache"):
                t = time.perf_counter()
                stats = await run_repair(client, cluster.configs[0].listen)
                print(f"5x128 vnodes {label:20s}: wall {time.perf_counter() - t:6.2f}s  ranges {stats['ranges_compared']} differing {stats['segments_differing']} virtual {stats['seconds']:.3f}s")
        finally:
            await cluster.stop()

    run_virtual(main())


if __name__ == "__main__":
    root = tempfile.mkdtemp(prefix="ringkv-bench-aae-")
    try:
        if "--compare-only" not in sys.argv:
            bench_observer(root)
        bench_compare(os.path.join(root, "cluster"))
        bench_vnodes(os.path.join(root, "vnodes"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
