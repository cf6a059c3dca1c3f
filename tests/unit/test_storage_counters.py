"""Counters in write batches: every change counts, once, even from many threads."""

from __future__ import annotations

import threading

from ringkv.storage import META_CF, Storage, read_counter


def _value(storage: Storage, key: bytes) -> int:
    return read_counter(storage.get(META_CF, key))[0]


def test_changes_in_one_batch_and_across_threads_all_count(tmp_path):
    storage = Storage(str(tmp_path / "db"))
    try:
        b = storage.batch()
        for _ in range(5):
            b.add(META_CF, b"c", 1)
        b.add(META_CF, b"c", -2)
        b.put(META_CF, b"other", b"x")
        storage.write(b)
        assert _value(storage, b"c") == 3 and storage.get(META_CF, b"other") == b"x"

        def adder() -> None:
            for _ in range(200):
                batch = storage.batch()
                batch.add(META_CF, b"c", 1)
                storage.write(batch)

        threads = [threading.Thread(target=adder) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert _value(storage, b"c") == 3 + 800, "a concurrent read-modify-write lost an increment"

        b = storage.batch()
        b.add(META_CF, b"c", -10_000)
        storage.write(b)
        assert _value(storage, b"c") == 0, "a counter never goes below zero"
    finally:
        storage.close()


def test_the_sum_beside_a_counter_wraps_modulo_2_64_and_returns_to_zero_when_every_term_is_taken_back(tmp_path):
    storage = Storage(str(tmp_path / "db"))
    try:
        terms = [2**64 - 5, 2**63 + 7, 12345]
        for t in terms:
            b = storage.batch()
            b.add(META_CF, b"c", 1, t)
            storage.write(b)
        assert read_counter(storage.get(META_CF, b"c")) == (3, sum(terms) % 2**64)
        b = storage.batch()
        for t in reversed(terms):  # taken back in another order, in one batch
            b.add(META_CF, b"c", -1, -t)
        storage.write(b)
        assert read_counter(storage.get(META_CF, b"c")) == (0, 0)
        storage.put(META_CF, b"old", (7).to_bytes(8, "big", signed=True))  # a counter stored before sums were kept
        assert read_counter(storage.get(META_CF, b"old")) == (7, 0)
    finally:
        storage.close()


def test_a_counter_deleted_or_overwritten_outside_a_batch_add_starts_from_what_is_stored(tmp_path):
    """Counter updates skip the read by remembering what they wrote; a delete
    (dropping a feed's length) or a direct write must not leave that stale."""
    storage = Storage(str(tmp_path / "db"))
    try:
        def add(n: int) -> None:
            b = storage.batch()
            b.add(META_CF, b"c", n, n)
            storage.write(b)

        add(5)
        b = storage.batch()
        b.delete(META_CF, b"c")
        storage.write(b)
        add(1)
        assert read_counter(storage.get(META_CF, b"c")) == (1, 1)
        b = storage.batch()
        b.delete_range(META_CF, b"a", b"d")
        storage.write(b)
        add(2)
        assert read_counter(storage.get(META_CF, b"c")) == (2, 2)
        storage.put(META_CF, b"c", (40).to_bytes(8, "big", signed=True) + (0).to_bytes(8, "big"))
        add(2)
        assert read_counter(storage.get(META_CF, b"c")) == (42, 2)
        storage.delete(META_CF, b"c")
        add(3)
        assert read_counter(storage.get(META_CF, b"c")) == (3, 3)
        storage.meta_put(b"c", (10).to_bytes(8, "big", signed=True) + (0).to_bytes(8, "big"))
        add(1)
        assert read_counter(storage.get(META_CF, b"c")) == (11, 1)
    finally:
        storage.close()
