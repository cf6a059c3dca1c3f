"""A streamed chunk applied in bulk ends exactly as applying its records one by one.

Two identical replicas receive the same chunk: one through ``LocalReplica.apply``
per record (the reference), the other through ``apply_many``. Records, hash
trees, tombstone index and feed lengths must all come out the same.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from ringkv.codec import decode_record, encode_record
from ringkv.errors import CorruptRecord, Unavailable
from ringkv.feeds.store import FeedStore
from ringkv.hashing import RING_SIZE
from ringkv.keyspaces import KeyspaceInfo
from ringkv.quorum.aae import Trees
from ringkv.quorum.dvv import DVVSet
from ringkv.quorum.replica import LocalReplica
from ringkv.quorum.tables import Table, feed_entry_key, feed_prefix
from ringkv.ring.handoff import Move
from ringkv.ring.streaming import StreamConfig, Streamer
from ringkv.storage import META_CF, Storage

PLAIN = Table("p", KeyspaceInfo("p"), "ks.p", False)
LWW = Table("l", KeyspaceInfo("l", conflict="lww"), "ks.l", False)
FEED = Table("p/feeds", KeyspaceInfo("p"), "fd.p", True)
TABLES = (PLAIN, LWW, FEED)
ACTORS = ("a.1", "b.1", "c.2")


class Node:
    def __init__(self, path: str) -> None:
        self.storage = Storage(path)
        for t in TABLES:
            self.storage.create_cf(t.cf)
        self.trees = Trees(self.storage, 6, clock=lambda: 1000.0, scan_chunk=5)
        self.trees.open()
        asyncio.run(self.trees.rebuild_stale())
        self.replica = LocalReplica(self.storage, "me.1")
        self.replica.observers.append(self.trees.observe)
        self.feeds = FeedStore(self.storage)

    def extra(self, table: Table, key: bytes):
        return self.feeds.length_extra(table, key) if table.feed else None

    def apply_each(self, table: Table, entries: list) -> None:
        for key, raw in entries:
            self.replica.apply(table.cf, table.skey(key), decode_record(raw), lww=table.lww, extra=self.extra(table, key))

    def apply_bulk(self, table: Table, entries: list) -> int:
        records = [(table.skey(k), raw, self.extra(table, k)) for k, raw in entries]
        return self.replica.apply_many(table.cf, records, lww=table.lww)

    def dump(self) -> dict:
        return {cf: [(k, decode_record(v)) for k, v in self.storage.scan(cf)] for cf in [t.cf for t in TABLES]}

    def meta(self) -> list:
        return list(self.storage.scan(META_CF))


def _record(rng: random.Random, lww: bool) -> DVVSet:
    """A record as some replica may hold it: siblings, tombstones, clocks ahead of the entries."""
    clock = {a: rng.randrange(1, 4) for a in rng.sample(ACTORS, rng.randrange(1, 4))}
    entries = []
    for actor, n in clock.items():
        if rng.random() < 0.6:
            entries.append((actor, n, rng.randrange(1, 1 << 40), None if rng.random() < 0.3 else rng.randbytes(4)))
    if lww:
        entries = entries[:1]
    return DVVSet(clock, entries)


def _keys(rng: random.Random, table: Table) -> list[bytes]:
    if table.feed:  # few feeds, several entries each: one chunk changes a feed's length more than once
        return [feed_entry_key(b"feed%d" % rng.randrange(3), rng.randbytes(16)) for _ in range(30)]
    return [b"k%d" % i for i in range(30)]


def _check_trees(node: Node) -> None:
    node.trees.seal()  # what a clean stop stores
    for t in TABLES:
        fresh = node.trees.recompute(t.cf)
        assert node.trees.tree(t.cf).leaf == fresh, t.cf
        assert node.trees.stored(t.cf) == fresh, t.cf


@pytest.mark.parametrize("seed", range(6))
def test_bulk_apply_equals_per_record_merges(tmp_path, seed):
    rng = random.Random(seed)
    ref, bulk = Node(str(tmp_path / "ref")), Node(str(tmp_path / "bulk"))
    for table in TABLES:
        keys = _keys(rng, table)
        # what both replicas already hold: a third of the keys (some of them tombstones)
        local = [[k, encode_record(_record(rng, table.lww))] for k in keys[:10]]
        ref.apply_each(table, local)
        bulk.apply_each(table, local)
        # the chunk: concurrent or older versions of local keys, new keys, new tombstones,
        # one key twice, one record that changes nothing
        chunk = [[k, encode_record(_record(rng, table.lww))] for k in keys[5:]]
        chunk.append([keys[0], local[0][1]])
        chunk.append([keys[20], encode_record(_record(rng, table.lww))])
        chunk.append([keys[25], encode_record(DVVSet({"b.1": 2}, [("b.1", 2, 7, None)]))])
        if table.lww:  # a record with two entries from a buggy peer still resolves the lww way
            chunk.append([b"two", encode_record(DVVSet({"a.1": 1, "b.1": 1}, [("a.1", 1, 5, b"x"), ("b.1", 1, 9, b"y")]))])
        rng.shuffle(chunk)
        ref.apply_each(table, chunk)
        assert bulk.apply_bulk(table, chunk) > 0
    assert bulk.dump() == ref.dump()
    assert bulk.meta() == ref.meta()  # feed lengths
    for t in TABLES:
        assert bulk.trees.tombs(t.cf, None, 10**6) == ref.trees.tombs(t.cf, None, 10**6)
    _check_trees(bulk)
    assert bulk.trees.tree(PLAIN.cf).leaf == ref.trees.tree(PLAIN.cf).leaf
    for feed in (b"feed0", b"feed1", b"feed2"):
        prefix = feed_prefix(feed)
        records = [decode_record(raw) for _, raw in bulk.storage.scan(FEED.cf, prefix, prefix + b"\xff" * 17)]
        live = sum(1 for r in records if r.entries and all(e[3] is not None for e in r.entries))
        assert bulk.feeds.length("p", feed) == live


def test_new_records_are_stored_as_received_and_advance_the_clock(tmp_path):
    node = Node(str(tmp_path / "n"))
    ts = node.replica.hlc.now() + (1 << 30)
    raw = encode_record(DVVSet({"z.1": 1, "a.1": 4}, [("z.1", 1, ts, b"v")]))  # clock not in canonical order
    assert node.apply_bulk(PLAIN, [[b"new", raw]]) == 1
    assert node.storage.get(PLAIN.cf, PLAIN.skey(b"new")) == raw
    assert node.replica.hlc.last > ts
    assert node.apply_bulk(PLAIN, [[b"new", raw]]) == 0  # a resent chunk changes nothing
    _check_trees(node)


def test_a_corrupt_record_rejects_the_chunk_before_anything_is_written(tmp_path):
    node = Node(str(tmp_path / "n"))
    good = encode_record(DVVSet({"a.1": 1}, [("a.1", 1, 5, b"v")]))
    with pytest.raises(CorruptRecord):
        node.apply_bulk(PLAIN, [[b"a", good], [b"b", b"\x01\xc1"], [b"c", good]])
    assert list(node.storage.scan(PLAIN.cf)) == []
    _check_trees(node)


def test_pull_reads_ahead_saves_only_applied_positions_and_resumes(tmp_path):
    src, dst = Node(str(tmp_path / "src")), Node(str(tmp_path / "dst"))
    rng = random.Random(7)
    src.apply_each(PLAIN, [[b"key%d" % i, encode_record(_record(rng, False))] for i in range(400)])
    src_streamer = Streamer(src.storage, src.apply_bulk, None, str)  # type: ignore[arg-type]
    move = Move(0, RING_SIZE, ("src",))
    events: list[tuple] = []
    fail_at = [6]

    async def request(addr: str, msg, timeout: float):
        events.append(("request", msg.after))
        if sum(1 for e in events if e[0] == "request") == fail_at[0]:
            raise Unavailable("source went away")
        await asyncio.sleep(0)
        return src_streamer.serve_pull(PLAIN, msg)

    def apply(table: Table, entries: list) -> int:
        events.append(("apply", table.skey(entries[-1][0])))
        return dst.apply_bulk(table, entries)

    def streamer() -> Streamer:
        s = Streamer(dst.storage, apply, request, str, StreamConfig(chunk_bytes=1500))
        s._throttle = throttled  # type: ignore[method-assign]
        return s

    throttle: list[int] = []

    async def throttled(nbytes: int) -> None:
        throttle.append(nbytes)

    with pytest.raises(Unavailable):
        asyncio.run(streamer().pull(PLAIN, move, lambda: ["src"]))
    applied = [e[1] for e in events if e[0] == "apply"]
    requests = [e[1] for e in events if e[0] == "request"]
    # the next chunk was asked for before the one held was applied
    assert requests[1:] == applied and events.index(("request", applied[0])) < events.index(("apply", applied[0]))
    assert len(throttle) == len(applied)
    # the saved position is the last chunk applied, and everything up to it is stored
    saved, keys, _, done = Streamer(dst.storage, apply, request, str)._load(f"pull:{PLAIN.wire_name}:0:{RING_SIZE:x}")
    assert saved == applied[-1] and not done
    assert [k for k, _ in src.storage.scan(PLAIN.cf, None, saved + b"\x00")] == [k for k, _ in dst.storage.scan(PLAIN.cf)]

    events.clear()
    fail_at[0] = 10**9
    t = asyncio.run(streamer().pull(PLAIN, move, lambda: ["src"]))
    assert events[0] == ("request", saved)  # resumed, not restarted
    assert t.finished is not None and t.keys == 400
    assert dst.dump()[PLAIN.cf] == src.dump()[PLAIN.cf]
    _check_trees(dst)


def test_push_keeps_two_chunks_in_flight_and_saves_positions_in_order(tmp_path):
    src, dst = Node(str(tmp_path / "src")), Node(str(tmp_path / "dst"))
    rng = random.Random(8)
    src.apply_each(PLAIN, [[b"key%d" % i, encode_record(_record(rng, False))] for i in range(300)])
    dst_streamer = Streamer(dst.storage, dst.apply_bulk, None, str)  # type: ignore[arg-type]
    move = Move(0, RING_SIZE, ("dst",))
    events: list[tuple] = []
    fail_at = [5]

    async def request(addr: str, msg, timeout: float):
        last = PLAIN.skey(msg.entries[-1][0])
        events.append(("send", last))
        if sum(1 for e in events if e[0] == "send") == fail_at[0]:
            raise Unavailable("target went away")
        await asyncio.sleep(0)
        dst_streamer.accept(PLAIN, msg.entries)
        events.append(("ack", last))

    def streamer() -> Streamer:
        return Streamer(src.storage, src.apply_bulk, request, str, StreamConfig(chunk_bytes=1500))

    with pytest.raises(Unavailable):
        asyncio.run(streamer().push(PLAIN, move, "dst"))
    sent = [e[1] for e in events if e[0] == "send"]
    acked = [e[1] for e in events if e[0] == "ack"]
    assert events.index(("send", sent[1])) < events.index(("ack", sent[0]))
    saved, _, _, done = streamer()._load(f"push:dst:{PLAIN.wire_name}:0:{RING_SIZE:x}")
    assert saved == sent[fail_at[0] - 2] and saved in acked and not done  # the chunk before the failed one

    events.clear()
    fail_at[0] = 10**9
    t = asyncio.run(streamer().push(PLAIN, move, "dst"))
    assert t.finished is not None and events[0][0] == "send"
    assert min(e[1] for e in events) > saved  # resumed after the saved position
    assert dst.dump()[PLAIN.cf] == src.dump()[PLAIN.cf]
    _check_trees(dst)
