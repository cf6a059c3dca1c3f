"""Hash trees kept by the write path: always equal to a from-scratch recomputation."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ringkv.codec import decode_record, encode_record
from ringkv.hashing import RING_SIZE
from ringkv.quorum.aae import Trees, _header_key, clip, covering_indexes, intersect, intersects, level_bits, node_range, record_digest
from ringkv.quorum.dvv import DVVSet
from ringkv.quorum.replica import LocalReplica
from ringkv.storage import AAE_CF, Storage

CFS = ["ks.a", "fd.a", "ks.b"]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _open(path: str, bits: int = 6):
    storage = Storage(path)
    for cf in CFS:
        storage.create_cf(cf)
    clock = Clock()
    trees = Trees(storage, bits, clock=clock, scan_chunk=7)
    trees.open()
    replica = LocalReplica(storage, "n1.1")
    replica.observers.append(trees.observe)
    return storage, trees, replica, clock


def _check(trees: Trees) -> None:
    """Every tree equals a recomputation, and so do the leaves a clean stop stores (the writes that follow unseal them)."""
    assert sorted(trees.seal()) == sorted(CFS)
    for cf in CFS:
        tree = trees.tree(cf)
        assert tree.ready
        fresh = trees.recompute(cf)
        assert tree.leaf == fresh, cf
        assert trees.stored(cf) == fresh, cf
        assert trees.storage.get(AAE_CF, _header_key(cf)) is not None
        # every upper level is the XOR of its children
        for level in range(len(tree.level_bits) - 1):
            for i, h in enumerate(tree.levels[level]):
                x = 0
                for c in tree.children(level, i):
                    x ^= tree.levels[level + 1][c]
                assert h == x
        # the tombstone index lists exactly the fully deleted records
        deleted = {k for k, raw in trees.storage.scan(cf) if record_digest(k, raw)[1]}
        assert {k for k, _, _ in trees.tombs(cf, None, 10**6)} == deleted


def _write_refused(storage: Storage, replica: LocalReplica, cf: str, skey: bytes) -> None:
    """A replica write that storage refuses (a full disk): it raises, and storage works again after."""
    import pytest

    from ringkv.errors import Unavailable

    real = storage.write

    def refuse(batch, sync=None):
        raise Unavailable("write: disk full")

    storage.write = refuse
    try:
        with pytest.raises(Unavailable):
            replica.write(cf, skey, b"v")
    finally:
        storage.write = real


def _random_ops(rng: random.Random, replica: LocalReplica, n: int) -> None:
    keys = [rng.randbytes(8) + b"k%d" % i for i in range(40)] + [b"\xff" * 8 + b"top", b"\x00" * 8 + b"bottom"]
    for _ in range(n):
        cf = rng.choice(CFS)
        skey = rng.choice(keys)
        op = rng.random()
        if op < 0.5:
            replica.write(cf, skey, rng.randbytes(rng.randrange(0, 20)), lww=rng.random() < 0.2)
        elif op < 0.6:
            replica.write(cf, skey, None)
        elif op < 0.7:
            # a chunk of encoded records, one key possibly twice (the streamed and client-copied path)
            batch = []
            for _ in range(rng.randrange(1, 4)):
                actor, c = rng.choice(["x.1", "y.1"]), rng.randrange(1, 6)
                value = None if rng.random() < 0.3 else rng.randbytes(4)
                batch.append((rng.choice([skey, rng.choice(keys)]), encode_record(DVVSet({actor: c}, [(actor, c, rng.randrange(1 << 40), value)])), None))
            replica.apply_many(cf, batch, lww=rng.random() < 0.2)
        else:
            # a record from another replica, with its clock in another order
            actor = rng.choice(["x.1", "y.1", "a.3"])
            c = rng.randrange(1, 5)
            value = None if rng.random() < 0.3 else rng.randbytes(5)
            clock = {actor: c, "zz.1": rng.randrange(0, 3)}
            clock = dict(reversed(list(clock.items()))) if rng.random() < 0.5 else clock
            replica.apply(cf, skey, DVVSet(clock, [(actor, c, rng.randrange(1 << 40), value)]))


def test_random_writes_keep_trees_equal_to_a_recomputation(tmp_path):
    for seed in range(3):
        storage, trees, replica, clock = _open(str(tmp_path / f"d{seed}"))
        rng = random.Random(seed)
        asyncio.run(trees.rebuild_stale())  # brand-new column families: empty trees
        _random_ops(rng, replica, 600)
        _check(trees)
        # reopen after a clean stop: the stored leaves load as they are, no rebuild
        storage.close()
        storage, trees, replica, clock = _open(str(tmp_path / f"d{seed}"))
        assert not trees.stale
        _check(trees)
        # writes after the seal, then a crash (no seal): the next start rebuilds
        _random_ops(rng, replica, 50)
        storage.close()
        storage, trees, replica, clock = _open(str(tmp_path / f"d{seed}"))
        assert trees.stale == set(CFS)
        asyncio.run(trees.rebuild_stale())
        _check(trees)
        # a crash right after a start that loaded the trees rebuilds them too (the start deleted the headers)
        storage.close()
        storage, trees, replica, clock = _open(str(tmp_path / f"d{seed}"))
        assert not trees.stale
        storage.close()
        storage, trees, replica, clock = _open(str(tmp_path / f"d{seed}"))
        assert trees.stale == set(CFS)
        storage.close()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CFS), st.integers(0, 15), st.one_of(st.none(), st.binary(max_size=8))), max_size=40))
def test_hypothesis_writes_and_deletes(tmp_path_factory, ops):
    path = str(tmp_path_factory.mktemp("h"))
    storage, trees, replica, clock = _open(path, bits=5)
    asyncio.run(trees.rebuild_stale())
    for cf, k, value in ops:
        skey = bytes([k * 16]) + b"\x00" * 7 + b"key%d" % k
        replica.write(cf, skey, value)
    _check(trees)
    storage.close()


def test_clock_order_does_not_change_the_digest():
    import msgpack

    a = encode_record(DVVSet({"a.1": 1, "b.1": 2}, [("b.1", 2, 5, b"v")]))
    assert encode_record(DVVSet({"b.1": 2, "a.1": 1}, [("b.1", 2, 5, b"v")])) == a  # encoded in one order now
    head = msgpack.packb([{"b.1": 2, "a.1": 1}, "b.1", 2, 5])  # as earlier versions stored it
    b = b"\x02" + len(head).to_bytes(4, "big") + head + b"v"
    assert a != b and decode_record(a) == decode_record(b)
    assert record_digest(b"k" * 9, a) == record_digest(b"k" * 9, b)
    assert record_digest(b"k" * 9, a) != record_digest(b"j" * 9, a)


def test_missing_tree_is_rebuilt_once_and_writes_during_rebuild_count(tmp_path):
    path = str(tmp_path / "d")
    storage, trees, replica, clock = _open(path)
    asyncio.run(trees.rebuild_stale())
    rng = random.Random(5)
    _random_ops(rng, replica, 300)
    # simulate an upgrade: records on disk, no tree at all
    b = storage.batch()
    b.delete_range(AAE_CF, b"\x00", b"\xff")
    storage.write(b)
    storage.close()
    storage, trees, replica, clock = _open(path)
    assert trees.stale == set(CFS)

    async def rebuild_while_writing():
        task = asyncio.ensure_future(trees.rebuild_stale())
        while not task.done():
            _random_ops(rng, replica, 5)  # writes land below and above the scan cursor
            await asyncio.sleep(0)
        await task

    asyncio.run(rebuild_while_writing())
    _check(trees)
    storage.close()
    storage, trees, replica, clock = _open(path)
    assert not trees.stale
    _check(trees)
    storage.close()


def test_range_deletes_and_purges_keep_the_tree_right(tmp_path):
    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    asyncio.run(trees.rebuild_stale())
    _random_ops(random.Random(9), replica, 400)
    assert trees.forget_range("ks.a", 0, 1 << 62) > 0
    assert trees.forget_range("fd.a", 3 << 62, RING_SIZE) > 0
    assert list(storage.scan_hash_range("ks.a", 0, 1 << 62)) == []
    assert asyncio.run(trees.drop_range("ks.b", 1 << 63, RING_SIZE)) > 0
    assert list(storage.scan_hash_range("ks.b", 1 << 63, RING_SIZE)) == []
    _check(trees)
    skey, raw = next(iter(storage.scan("ks.b")))
    trees.delete_record("ks.b", skey, raw)
    assert storage.get("ks.b", skey) is None
    _check(trees)
    storage.close()


def test_recreated_column_family_starts_a_new_tree(tmp_path):
    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    asyncio.run(trees.rebuild_stale())
    _random_ops(random.Random(3), replica, 200)
    storage.drop_cf("ks.a")
    storage.create_cf("ks.a")
    replica.write("ks.a", b"\x01" * 8 + b"new", b"v")  # the observer notices the new column family
    assert "ks.a" in trees.stale
    asyncio.run(trees.rebuild_stale())
    _check(trees)
    storage.drop_cf("ks.b")
    assert trees.get("ks.b") is None
    storage.close()


def _brute(pieces, lo, hi):
    return [(max(a, lo), min(b, hi)) for a, b in pieces if max(a, lo) < min(b, hi)]


@st.composite
def pieces_st(draw):
    cuts = sorted(set(draw(st.lists(st.integers(0, RING_SIZE), min_size=0, max_size=12))))
    out = []
    for i in range(0, len(cuts) - 1, 2):
        if cuts[i] < cuts[i + 1]:
            out.append((cuts[i], cuts[i + 1]))
    return out


@given(pieces_st(), pieces_st(), st.integers(0, RING_SIZE - 1), st.integers(1, RING_SIZE))
def test_range_helpers_agree_with_brute_force(a, b, lo, span):
    hi = min(RING_SIZE, lo + span)
    assert clip(a, lo, hi) == _brute(a, lo, hi)
    assert intersects(a, lo, hi) == bool(_brute(a, lo, hi))
    inter = intersect(a, b)
    brute = sorted(x for p in a for x in _brute(b, *p))
    assert inter == brute
    for lb in (1, 5, 10):
        idx = covering_indexes(a, lb)
        assert idx == sorted(set(idx))
        assert set(idx) == {i for i in range(1 << lb) if _brute(a, *node_range(lb, i))} if lb <= 10 else True


def test_level_geometry():
    assert level_bits(10) == [5, 10]
    assert level_bits(16) == [5, 10, 15, 16]
    assert level_bits(3) == [3]


def test_a_write_that_fails_leaves_no_tree_that_differs_from_storage(tmp_path):
    """A batch the tree counted but storage refused must not stay in the tree:
    readers trust equal segment hashes to mean equal records. The tree is
    rebuilt from storage, and trusted by no reader until then."""
    import pytest

    from ringkv.errors import Unavailable

    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    asyncio.run(trees.rebuild_stale())
    replica.write_failed.append(trees.resync)
    _random_ops(random.Random(5), replica, 200)
    real_write = storage.write
    failures = iter([True, False])

    def flaky(batch, sync=None):
        if next(failures, False):
            raise Unavailable("write: disk full")
        real_write(batch, sync)

    storage.write = flaky
    skey = b"\x42" * 8 + b"lost"
    with pytest.raises(Unavailable):
        replica.write("fd.a", skey, b"never stored")
    assert storage.get("fd.a", skey) is None
    assert trees.segment_hash("fd.a", skey) is None and trees.get("fd.a") is None
    asyncio.run(trees.rebuild_stale())
    assert trees.segment_hash("fd.a", skey) == trees.recompute("fd.a")[trees.tree("fd.a").segment(skey)]
    _check(trees)
    # a failure on the trees' own writes (a purge) is undone the same way
    victim, raw = next(iter(storage.scan("ks.a")))
    failures = iter([True])
    with pytest.raises(Unavailable):
        trees.delete_record("ks.a", victim, raw)
    assert storage.get("ks.a", victim) == raw
    assert trees.get("ks.a") is None
    asyncio.run(trees.rebuild_stale())
    _check(trees)
    storage.write = real_write
    storage.close()


def test_segment_hash_is_given_only_by_a_complete_tree(tmp_path):
    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    skey = b"\x10" * 8 + b"k"
    assert trees.segment_hash("fd.a", skey) is None, "a tree being built vouches for nothing"
    asyncio.run(trees.rebuild_stale())
    assert trees.segment_hash("fd.a", skey) == 0
    replica.write("fd.a", skey, b"v")
    assert trees.segment_hash("fd.a", skey) == trees.recompute("fd.a")[trees.tree("fd.a").segment(skey)] != 0
    assert trees.segment_hash("fd.nope", skey) is None
    storage.close()


def test_a_write_that_fails_during_a_rebuild_leaves_no_wrong_tree_behind(tmp_path):
    """The rebuild under way stops, a fresh one starts: no tree with leaves
    counted twice is ever marked complete or stored."""
    from ringkv.quorum.aae import _header_key

    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    replica.write_failed.append(trees.resync)
    asyncio.run(trees.rebuild_stale())
    _random_ops(random.Random(5), replica, 300)

    async def main() -> None:
        trees.expire()
        rebuilding = asyncio.ensure_future(trees.rebuild("fd.a"))
        for _ in range(5):
            await asyncio.sleep(0)  # a few chunks scanned
        assert trees.trees["fd.a"].cursor, "the rebuild is under way"
        _write_refused(storage, replica, "fd.a", b"\x00" * 8 + b"below the cursor")
        await rebuilding
        assert trees.get("fd.a") is None or trees.get("fd.a").leaf == trees.recompute("fd.a")
        if storage.get(AAE_CF, _header_key("fd.a")) is not None:
            assert trees.stored("fd.a") == trees.recompute("fd.a")
        await trees.rebuild_stale()

    asyncio.run(main())
    _check(trees)
    storage.close()


def test_a_rebuild_whose_last_write_fails_is_not_complete(tmp_path):
    """The scan's last batch never reached storage (its tombstone index
    entries are missing): the tree must not be marked complete."""
    from ringkv.errors import Unavailable

    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    asyncio.run(trees.rebuild_stale())
    _random_ops(random.Random(5), replica, 300)
    real = storage.write
    cursors: list = []

    def record(batch, sync=None):
        cursors.append(trees.trees["fd.a"].cursor)
        real(batch, sync)

    storage.write = record  # a first rebuild finds which write is the scan's last
    trees.stale.add("fd.a")
    asyncio.run(trees.rebuild_stale())
    last = cursors.index(None) - 1  # the write after it sees the tree complete
    assert last > 0
    writes = iter(range(len(cursors)))

    def fail_the_last(batch, sync=None):
        if next(writes) == last:
            raise Unavailable("write: disk full")
        real(batch, sync)

    storage.write = fail_the_last
    trees.stale.add("fd.a")
    asyncio.run(trees.rebuild_stale())
    storage.write = real
    assert trees.get("fd.a") is None and trees.segment_hash("fd.a", next(iter(storage.scan("fd.a")))[0]) is None
    trees.expire()  # the weekly rebuild (or a restart) completes it
    asyncio.run(trees.rebuild_stale())
    _check(trees)
    storage.close()


def test_a_failed_write_after_a_seal_still_unseals_the_tree(tmp_path):
    """The write that should have deleted the header failed: the header must
    still go, or the next start would load leaves older than the records."""
    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    replica.write_failed.append(trees.resync)
    asyncio.run(trees.rebuild_stale())
    _random_ops(random.Random(7), replica, 100)
    trees.seal()
    _write_refused(storage, replica, "ks.a", b"\x10" * 8 + b"refused")
    for i in range(5):  # the tree is rebuilding: these are left to its scan
        replica.write("ks.a", bytes([i]) * 8 + b"after", b"v")
    storage.close()  # a crash: no seal
    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    assert "ks.a" in trees.stale
    asyncio.run(trees.rebuild_stale())
    _check(trees)
    storage.close()


def test_two_rebuilds_of_one_tree_at_once_leave_it_right(tmp_path):
    """The weekly rebuild can start while another is under way: the older one stops."""
    storage, trees, replica, clock = _open(str(tmp_path / "d"))
    asyncio.run(trees.rebuild_stale())
    _random_ops(random.Random(9), replica, 1200)

    async def main() -> None:
        first = asyncio.ensure_future(trees.rebuild("ks.a"))
        for _ in range(3):
            await asyncio.sleep(0)  # a few chunks scanned
        assert trees.trees["ks.a"].cursor, "the first rebuild is under way"
        second = asyncio.ensure_future(trees.rebuild("ks.a"))
        await asyncio.sleep(0)
        assert not first.done()
        assert await second is True
        assert await first is False

    asyncio.run(main())
    _check(trees)
    storage.close()
