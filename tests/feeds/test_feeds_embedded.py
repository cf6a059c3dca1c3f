"""Feeds in the embedded database: the event-stream API a user builds timelines on."""

from __future__ import annotations

import asyncio
import threading

import pytest

import ringkv
from ringkv.errors import BadRequest, TooLarge, WrongType


@pytest.fixture
def db(tmp_path):
    d = ringkv.open(tmp_path / "data", max_value_size=1024)
    yield d
    d.close()


def test_append_and_iterate_in_order_both_ways(db):
    feed = db.feed("timeline")
    ids = [feed.append(f"event {i}") for i in range(50)]
    assert ids == sorted(ids)  # printable ids sort like entries
    assert [e.id for e in feed.iterate()] == ids
    assert [e.id for e in feed.iterate(reverse=True)] == ids[::-1]
    assert [e.data for e in feed.iterate(limit=2)] == [b"event 0", b"event 1"]
    assert feed.length() == 50


def test_links_walk_the_whole_feed_both_ways(db):
    feed = db.feed("f")
    ids = [feed.append(b"x%d" % i) for i in range(20)]
    walked, e = [], feed.get(ids[0])
    assert e.prev_id is None
    while e is not None:
        walked.append(e.id)
        e = feed.get(e.next_id) if e.next_id else None
    assert walked == ids
    back, e = [], feed.get(ids[-1])
    assert e.next_id is None
    while e is not None:
        back.append(e.id)
        e = feed.get(e.prev_id) if e.prev_id else None
    assert back == ids[::-1]


def test_remove_is_skipped_by_iteration_and_links(db):
    feed = db.feed("f")
    ids = [feed.append(b"%d" % i) for i in range(5)]
    feed.remove(ids[2])
    feed.remove(ids[2])  # idempotent
    assert [e.id for e in feed] == [ids[0], ids[1], ids[3], ids[4]]
    assert feed.get(ids[2]) is None
    assert feed.get(ids[1]).next_id == ids[3]
    assert feed.get(ids[3]).prev_id == ids[1]
    assert feed.length() == 4


def test_cursors_resume_exactly(db):
    feed = db.feed("f")
    ids = [feed.append(b"%d" % i) for i in range(30)]
    seen, cursor = [], None
    while True:
        page = list(feed.iterate(start=cursor, limit=7))
        if not page:
            break
        seen += [e.id for e in page]
        cursor = page[-1].id
    assert seen == ids
    assert [e.id for e in feed.iterate(start=ids[10], reverse=True, limit=3)] == [ids[9], ids[8], ids[7]]


def test_trim(db):
    feed = db.feed("f")
    ids = [feed.append(b"%d" % i) for i in range(10)]
    assert feed.trim(keep_last=4) == 6
    assert [e.id for e in feed] == ids[6:]
    assert feed.trim(before=ids[8]) == 2
    assert [e.id for e in feed] == ids[8:]
    assert feed.length() == 2
    with pytest.raises(BadRequest):
        feed.trim()
    with pytest.raises(BadRequest):
        feed.trim(keep_last=1, before=ids[9])


def test_follow_receives_entries_appended_after_it_started(db):
    feed = db.feed("f")
    feed.append(b"old")
    got: list = []
    follower = feed.follow(poll=0.01, timeout=5)
    ready = threading.Event()

    def consume():
        ready.set()
        for entry in follower:
            got.append(entry.data)
            if len(got) == 3:
                return

    t = threading.Thread(target=consume)
    t.start()
    ready.wait(5)
    for i in range(3):
        feed.append(b"new%d" % i)
    t.join(10)
    assert got == [b"new0", b"new1", b"new2"]


def test_concurrent_appends_from_threads_never_lose_an_entry(db):
    feed = db.feed("f")

    def writer(n):
        for i in range(200):
            feed.append(b"%d-%d" % (n, i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = feed.all()
    assert len(entries) == 800 == len({e.id for e in entries}) == feed.length()


def test_seed_004_feed_api_parity(db):
    """kvs's all/get/add/remove/cleanup each have an equivalent."""
    feed = db.feed("bucket")
    a = feed.append(b"a")  # add
    b = feed.append(b"b")
    assert [e.data for e in feed.all()] == [b"a", b"b"]  # all
    assert feed.get(a).data == b"a" and feed.get(a).next_id == b  # get (with links)
    feed.remove(a)  # remove
    assert [e.data for e in feed.all()] == [b"b"]
    assert feed.trim(keep_last=0) == 1  # cleanup
    assert feed.all() == [] and feed.length() == 0


def test_feeds_are_listed_and_unknown_feeds_are_empty(db):
    assert db.feeds() == []
    assert db.feed("nothing").all() == [] and db.feed("nothing").length() == 0
    db.feed("one").append(b"x")
    db.keyspace_create("ks")
    db.keyspace("ks").feed("two").append(b"y")
    assert db.feeds() == ["one"]
    assert db.keyspace("ks").feeds() == ["two"]


def test_bad_input(db):
    feed = db.feed("f")
    with pytest.raises(TooLarge):
        feed.append(b"x" * 1025)
    with pytest.raises(WrongType):
        feed.append(12)
    for bad in ["", "short", "!" * 26, "z" * 26]:
        with pytest.raises(BadRequest):
            feed.get(bad)
    with pytest.raises(WrongType):
        feed.get(5)
    with pytest.raises(BadRequest):
        db.feed("")
    with pytest.raises(BadRequest):
        list(feed.iterate(limit=-1))
    assert feed.all() == []


def test_persistence_and_async_twins(tmp_path):
    path = tmp_path / "d"
    with ringkv.open(path) as db:
        eid = db.feed("f").append(b"kept")

    async def main(db):
        feed = db.feed("f")
        await feed.aappend(b"more")
        return [e.data async for e in feed.aiterate()], await feed.alength()

    with ringkv.open(path) as db:
        assert db.feed("f").get(eid).data == b"kept"
        assert asyncio.run(main(db)) == ([b"kept", b"more"], 2)


def test_drop_keyspace_drops_its_feeds(db):
    db.keyspace_create("tmp")
    db.keyspace("tmp").feed("f").append(b"x")
    db.keyspace_drop("tmp")
    db.keyspace_create("tmp")
    assert db.keyspace("tmp").feed("f").all() == []
    assert db.keyspace("tmp").feed("f").length() == 0
    assert db.keyspace("tmp").feeds() == []
