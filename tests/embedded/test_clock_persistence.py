"""The hybrid logical clock of a data directory never runs backwards across restarts.

Dot counters and feed entry ids come from it. If a restart met a wall clock
set back (NTP step, a VM restored, a dead RTC battery), an unpersisted clock
would hand out counters and ids below ones it had already used: a dot
another replica already saw deleted, or a feed entry that sorts before the
writer's earlier entries, or even repeats one.
"""

from __future__ import annotations

import time

import ringkv
from ringkv.feeds.ids import parse_id
from ringkv.identity import HLC_LEASE, persistent_clock
from ringkv.quorum.dvv import decode_context
from ringkv.quorum.hlc import to_millis as _ms

HLC_LEASE_S = _ms(HLC_LEASE) / 1000
from ringkv.storage import Storage


def _dot_counter(db, key: bytes) -> int:
    (actor_counters,) = decode_context(db.get(key).context).values()
    return actor_counters


def test_counters_and_entry_ids_keep_growing_after_a_restart_with_the_wall_clock_set_back(tmp_path, monkeypatch):
    path = str(tmp_path / "db")
    with ringkv.open(path) as db:
        db.put(b"before", b"1")
        first = _dot_counter(db, b"before")
        first_entry = db.feed("log").append(b"a")

    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() - 3600 * 10**9)  # an hour back
    with ringkv.open(path) as db:
        db.put(b"after", b"2")
        later = _dot_counter(db, b"after")
        later_entry = db.feed("log").append(b"b")
        entries = [e.data for e in db.feed("log").iterate()]
    assert later > first, "a counter after the restart is below one handed out before it"
    assert parse_id(later_entry) > parse_id(first_entry)
    assert entries == [b"a", b"b"], "the writer's entries keep their order"


def test_the_recorded_ceiling_is_written_once_per_lease_not_per_timestamp(tmp_path):
    storage = Storage(str(tmp_path / "s"))
    try:
        writes = []
        real_put = storage.meta_put
        storage.meta_put = lambda k, v, sync=True: (writes.append(k), real_put(k, v, sync))  # type: ignore[method-assign]
        clock = persistent_clock(storage)
        stamps = [clock.now() for _ in range(10_000)]
        assert stamps == sorted(set(stamps))
        assert 1 <= len(writes) <= 1 + (stamps[-1] - stamps[0]) // HLC_LEASE
        again = persistent_clock(storage)
        assert again.now() > stamps[-1]
    finally:
        storage.close()


def test_opening_and_closing_again_and_again_does_not_push_the_clock_ahead(tmp_path):
    """A clean close records the latest timestamp, not the lease ahead of it:
    a CLI call per write must not leave timestamps in the future."""
    from ringkv.quorum.hlc import to_millis

    path = str(tmp_path / "db")
    for i in range(30):
        with ringkv.open(path) as db:
            db.put(b"k", b"%d" % i)
    with ringkv.open(path) as db:
        db.put(b"k", b"last")
        last = db._replica.hlc.last
    ahead_s = to_millis(last) / 1000 - time.time()
    assert ahead_s < HLC_LEASE_S, f"the clock is {ahead_s:.1f}s ahead of the wall clock"


def test_ceilings_are_recorded_in_order_when_threads_share_the_clock(tmp_path):
    import threading

    storage = Storage(str(tmp_path / "s"))
    try:
        recorded = []
        real_put = storage.meta_put

        def slow_put(k, v, sync=True):
            time.sleep(0.01)  # a slow fsync widens any race; not a wait for a condition
            recorded.append(int(v))
            real_put(k, v, sync)

        storage.meta_put = slow_put  # type: ignore[method-assign]
        clock = persistent_clock(storage)
        got: list[int] = []

        def stamp() -> None:
            for _ in range(3):
                got.append(clock.now())

        threads = [threading.Thread(target=stamp) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert recorded == sorted(recorded), "a lower ceiling was recorded after a higher one"
        assert max(got) <= recorded[-1], "a timestamp above the recorded ceiling was handed out"
    finally:
        storage.close()
