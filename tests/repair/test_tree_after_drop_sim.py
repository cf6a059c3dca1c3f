"""A keyspace dropped and created again must not inherit the hash tree of the old one.

A node keeps each column family's tree in ``_aae`` across restarts. If the
stored leaves of a dropped keyspace survived, a node restarted after the
keyspace was created again would trust them for the new, empty one: its
tree would never agree with its replicas' (no feed page served by tree
agreement there, anti-entropy comparing in vain until the weekly rebuild).
"""

from __future__ import annotations

from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual


def test_a_recreated_keyspace_starts_with_an_empty_tree_after_a_restart(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=4).start()
        try:
            client = await cluster.client(1, timeout=5.0)
            await cluster.wait_all_up()
            await client.akeyspace_create("x", n=3, r=2, w=3)
            for i in range(50):
                await client.keyspace("x").aput(b"k%d" % i, b"v")
            node = cluster.servers[0]
            await cluster.wait_for(lambda: node.repair.trees.get("ks.x") is not None)
            before = sum(node.repair.trees.get("ks.x").leaf)
            await client.akeyspace_drop("x")
            await cluster.wait_for(lambda: not cluster.servers[0].storage.has_cf("ks.x"))
            await client.akeyspace_create("x", n=3, r=2, w=3)
            await cluster.wait_for(lambda: cluster.servers[0].storage.has_cf("ks.x"), step=0.01)
            await cluster.crash(0)
            node = await cluster.restart(0)
            await cluster.wait_for(lambda: node.repair.trees.get("ks.x") is not None)
            return before, list(node.repair.trees.get("ks.x").leaf)
        finally:
            await cluster.stop()

    before, leaves = run_virtual(main())
    assert before != 0, "the first keyspace's tree should have counted its keys"
    assert not any(leaves), "the re-created, empty keyspace kept the dropped one's hash tree"
