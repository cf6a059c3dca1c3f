"""Dropping a range a node no longer replicates forgets exactly what should go.

Cleanup drops ranges after handing them off. A hinted copy that arrives for
such a range meanwhile is what a down owner still needs from this node, so
the drop must spare it; and the lengths of the feeds placed in the range go
with their entries, whatever bytes the feed names are.
"""

from __future__ import annotations

from ringkv.feeds.store import FeedStore
from ringkv.hashing import RING_SIZE, hash64
from ringkv.quorum.messages import LocalGet
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual
from ringkv.storage import META_CF, Storage


def test_a_dropped_range_keeps_the_keys_held_for_a_down_owner(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 1, seed=2).start()
        try:
            client = await cluster.client(0)
            await client.akeyspace_create("data", n=1, r=1, w=1)
            keys = [b"k%d" % i for i in range(40)]
            for k in keys:
                await client.keyspace("data").aput(k, b"v")
            node = cluster.servers[0]
            table = node.coordinator.table("data")
            assert node.coordinator._hold_hint(table, b"k7", "an-owner-that-is-down")
            complete = await node.elastic._drop(table, 0, RING_SIZE)
            left = [k for k in keys if (await client.call(LocalGet("data", k), addr=node.config.listen)).record is not None]
            return complete, left
        finally:
            await cluster.stop()

    complete, left = run_virtual(main())
    assert left == [b"k7"], "the hinted key must stay, every other key of the range must go"
    assert complete is False, "a drop that kept keys is not complete (cleanup passes again later)"


def test_dropping_a_range_forgets_the_lengths_of_its_feeds_whatever_their_names(tmp_path):
    storage = Storage(str(tmp_path / "db"))
    try:
        store = FeedStore(storage)
        names = [b"timeline", b"\xff\xfe not utf-8 \x00", bytes(range(16))]
        b = storage.batch()
        for name in names:
            b.add(META_CF, store._len_key("ks", name), 5)
        storage.write(b)
        assert sorted(n for _, n in store.feeds("ks")) == [5, 5, 5]

        inside = hash64(names[1])
        store.drop_lengths("ks", inside, inside + 1)  # only the binary name's position
        assert [store.length("ks", n) for n in names] == [5, 0, 5]

        store.drop_lengths("ks", 0, RING_SIZE)
        assert store.feeds("ks") == []
    finally:
        storage.close()
