"""fsync=True: a write is on disk when it is acknowledged, and concurrent writes share fsyncs."""

from __future__ import annotations

import asyncio
import threading

import ringkv


def test_embedded_put_returns_only_once_synced(tmp_path):
    db = ringkv.open(tmp_path / "db", fsync=True)
    try:
        storage = db._storage
        for i in range(50):
            db.put(b"k%d" % i, b"v")
            assert storage._synced_seq >= storage._db.latest_sequence_number(), "acknowledged before its WAL sync"
        db.feed("f").append(b"e")
        assert storage._synced_seq >= storage._db.latest_sequence_number()
    finally:
        db.close()


def test_embedded_concurrent_writers_share_fsyncs(tmp_path):
    db = ringkv.open(tmp_path / "db", fsync=True)
    try:
        storage = db._storage
        before = storage.wal_syncs
        barrier = threading.Barrier(8)

        def writer(t: int) -> None:
            barrier.wait()
            for i in range(100):
                db.put(b"t%d-%d" % (t, i), b"v" * 100)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert all(db.get(b"t%d-%d" % (t, i)).value == b"v" * 100 for t in range(8) for i in range(100))
        assert storage.wal_syncs - before < 800, "every write synced alone: no group commit"
    finally:
        db.close()


def test_without_fsync_nothing_is_synced_per_write(tmp_path):
    db = ringkv.open(tmp_path / "db")
    try:
        before = db._storage.wal_syncs  # metadata writes are always synced
        for i in range(20):
            db.put(b"k%d" % i, b"v")
        assert db._storage.wal_syncs == before
    finally:
        db.close()


def test_node_acknowledges_after_one_fsync_per_loop_turn(tmp_path):
    node = ringkv.Node(tmp_path / "node", listen="tcp://127.0.0.1:0", vnodes=8, fsync=True)
    node.start()
    try:
        storage = node._server.storage
        unsafe = []
        original = node._server.transport.before_send

        def checked() -> None:  # runs before every send: afterwards nothing written may be unsynced
            original()
            if storage._synced_seq < storage._db.latest_sequence_number():
                unsafe.append(storage._db.latest_sequence_number())

        node._server.transport.before_send = checked
        client = node.client()
        client.keyspace_create("one", n=1, r=1, w=1)
        before = storage.wal_syncs

        async def burst() -> None:
            ks = client.keyspace("one")
            await asyncio.gather(*(ks.aput(b"k%d" % i, b"v") for i in range(400)))

        client._runner.run(burst())
        assert client.keyspace("one").get(b"k399").value == b"v"
        assert not unsafe, "a reply left before the writes it acknowledges were synced"
        assert 0 < storage.wal_syncs - before < 400 / 2, "writes of one loop turn should share an fsync"
    finally:
        node.stop()

