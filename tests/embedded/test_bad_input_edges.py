"""Bad input at the edges of the embedded API gets a typed error and leaves the data usable."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

import ringkv
from ringkv.errors import BadRequest, RingKVError, WrongType


@pytest.fixture
def db(tmp_path):
    d = ringkv.open(str(tmp_path / "db"))
    yield d
    d.close()


def test_a_forged_context_with_a_huge_counter_is_refused_and_the_key_stays_writable(db):
    db.put(b"k", b"v1")
    forged = msgpack.packb([db.identity.actor, 2**64 - 2])
    with pytest.raises(BadRequest):
        db.put(b"k", b"poison", forged)
    db.put(b"k", b"v2", db.get(b"k").context)
    assert db.get(b"k").values == [b"v2"]


@pytest.mark.parametrize("call", [
    lambda f, i: f.length(r=0),
    lambda f, i: f.length(r="x"),
    lambda f, i: f.get(i, r="x"),
    lambda f, i: f.get(i, r=5),
    lambda f, i: f.remove(i, w=7),
])
def test_feed_reads_and_removes_check_r_and_w_as_appends_do(db, call):
    feed = db.feed("events")
    entry = feed.append(b"e")
    with pytest.raises((BadRequest, WrongType)):
        call(feed, entry)
    assert [e.data for e in feed.iterate()] == [b"e"]


@pytest.mark.parametrize("poll, timeout, error", [(-1, 0.1, BadRequest), ("x", 0.1, WrongType), (0.1, "x", WrongType), (0.1, -5, BadRequest)])
def test_follow_refuses_bad_poll_and_timeout_when_called(db, poll, timeout, error):
    feed = db.feed("events")
    with pytest.raises(error):
        feed.follow(poll=poll, timeout=timeout)

    async def first():
        async for _ in feed.afollow(poll=poll, timeout=timeout):
            pass

    with pytest.raises(error):
        asyncio.run(first())


def test_a_feed_name_that_is_not_valid_unicode_is_a_bad_request(db):
    with pytest.raises(BadRequest):
        db.feed("\udc80").append(b"x")
    assert issubclass(BadRequest, RingKVError)


@pytest.mark.parametrize("reverse", ["yes", 1, None, "false"])
def test_reverse_must_be_a_bool(db, reverse):
    """A string like "false" must not read as true: a typed error, not the wrong order."""
    feed = db.feed("f")
    feed.append(b"a")
    with pytest.raises(WrongType):
        list(feed.iterate(reverse=reverse))

    async def main():
        return [e async for e in feed.aiterate(reverse=reverse)]

    with pytest.raises(WrongType):
        asyncio.run(main())
    assert [e.data for e in feed.iterate(reverse=True)] == [b"a"]


@pytest.mark.parametrize("options, error", [
    ({"node_id": 5}, WrongType),
    ({"seeds": [5]}, BadRequest),
    ({"seeds": ["not-an-endpoint"]}, BadRequest),
    ({"request_timeout": "x"}, BadRequest),
    ({"request_timeout": -1}, BadRequest),
    ({"max_message_size": 10}, BadRequest),
])
def test_a_node_with_impossible_options_is_refused_before_it_starts(tmp_path, options, error):
    with pytest.raises(error):
        ringkv.Node(str(tmp_path / "n"), listen="tcp://127.0.0.1:0", **options)
