"""Packed feed pages: they read back exactly as the list form, and bad ones are refused."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringkv.codec import encode_record
from ringkv.errors import ProtocolError
from ringkv.feeds.messages import FeedPackedPage, FeedPage
from ringkv.feeds.pages import Joined, packed_fields, page_digest
from ringkv.feeds.store import page_of
from ringkv.quorum.dvv import DVVSet
from ringkv.quorum.tables import feed_prefix

PREFIX = feed_prefix(b"timeline")


def _row(i: int, value: bytes | None, actor: str = "a1b2c3d4e5f6.x1", counter: int = 1) -> tuple[bytes, bytes]:
    rec = DVVSet({actor: counter}, [(actor, counter, 1_000_000 + i, value)])
    return PREFIX + i.to_bytes(16, "big"), encode_record(rec)


def _wire(msg):
    """The message as the receiving side gets it (packed, unpacked, checked)."""
    return type(msg).from_body(msgpack.unpackb(msgpack.packb(msg.to_body(), use_bin_type=True), raw=False))


def _packed(rows, full=True) -> FeedPackedPage:
    joined = Joined(rows)
    skip = joined.uniform_skip()
    assert skip is not None
    return FeedPackedPage(*packed_fields(joined, skip, rows[-1][0][-16:], full))


_SAME_SIZE = st.integers(0, 150).flatmap(lambda n: st.lists(st.binary(min_size=n, max_size=n), min_size=1, max_size=40))


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=60) | _SAME_SIZE, st.booleans(), st.data())
def test_a_packed_page_reads_back_as_the_list_page(values, full, data):
    """Values of any sizes, and of one size (those pages are sliced at fixed offsets)."""
    rows = [_row(i, v) for i, v in enumerate(values)]
    page = _wire(_packed(rows, full))
    assert page.page() == page_of(rows, full, None)
    limit = data.draw(st.integers(1, len(rows) + 2))
    ids, datas, cursor, more = page_of(rows, full, None)
    if limit < len(rows):
        assert _wire(page.first(limit)).page() == (ids[:limit], datas[:limit], ids[limit - 1], True)
        assert _wire(FeedPage(ids, datas, cursor, more).first(limit)).page() == (ids[:limit], datas[:limit], ids[limit - 1], True)
    else:
        assert page.first(limit).page() == (ids, datas, cursor, more)


@pytest.mark.parametrize("values", [[b"same"] * 5, [b"v" * i for i in range(5)]])
def test_pages_too_long_for_a_cached_slicer_read_back_the_same(monkeypatch, values):
    from ringkv.feeds import pages

    rows = [_row(i, v) for i, v in enumerate(values)]
    monkeypatch.setattr(pages, "_MAX_FIELDS", 2)
    assert _wire(_packed(rows)).page() == page_of(rows, True, None)


def test_pages_whose_records_differ_are_not_packed():
    rows = [_row(i, b"v%d" % i) for i in range(5)]
    assert Joined(rows).uniform_skip() is not None
    assert Joined([*rows, _row(5, None)]).uniform_skip() is None, "a removed entry (tombstone) needs the list form"
    assert Joined([*rows, _row(5, b"x", actor="other.y22")]).uniform_skip() is None, "another header length"
    assert Joined([*rows, _row(5, b"x", counter=1000)]).uniform_skip() is None
    assert Joined([]).uniform_skip() is None


@pytest.mark.parametrize("at, byte", [(0, 1), (1, 1), (4, 0)])
def test_records_of_one_size_with_another_header_are_not_packed(at, byte):
    rows = [_row(i, b"v%03d" % i) for i in range(8)]
    key, rec = rows[5]
    rows[5] = (key, rec[:at] + bytes([byte]) + rec[at + 1:])  # same size, another format or header length
    assert len({len(r) for _, r in rows}) == 1
    assert Joined(rows).uniform_skip() is None
    assert Joined(rows[:5]).uniform_skip() is not None


def test_the_digest_sees_every_byte_and_every_boundary():
    rows = [_row(0, b"ab"), _row(1, b"c")]
    assert page_digest(rows) == page_digest(list(rows))
    k0, r0 = rows[0]
    k1, r1 = rows[1]
    moved = [(k0, r0[:-1]), (k1, r0[-1:] + r1)]  # the same bytes joined, one boundary moved
    assert b"".join(r for _, r in moved) == b"".join(r for _, r in rows)
    assert page_digest(moved) != page_digest(rows)
    assert page_digest([(k0, r0), (k1, r1[:-1] + b"d")]) != page_digest(rows)
    assert page_digest([(k0[:-1] + b"\x09", r0), (k1, r1)]) != page_digest(rows)
    assert page_digest(rows[:1]) != page_digest(rows)


@pytest.mark.parametrize("change", [
    {"stride": 15},
    {"skip": 4},
    {"skip": 10_000},
    {"lengths": b"\x01\x00\x00"},
    {"lengths": b"\x00\x00\x00\x00"},
    {"keys": b"short"},
    {"records": b""},
])
def test_a_packed_page_whose_parts_disagree_is_refused(change):
    body = _packed([_row(i, b"value %d" % i) for i in range(3)]).to_body()
    names = list(FeedPackedPage.__dataclass_fields__)
    for name, value in change.items():
        body[names.index(name)] = value
    with pytest.raises(ProtocolError):
        FeedPackedPage.from_body(body)


def test_the_digest_sees_key_boundaries():
    (k0, r0), (k1, r1) = _row(0, b"x"), _row(1, b"x")
    r1 = r0  # the same records: only the keys' split differs
    assert page_digest([(k0 + b"z", r0), (k1, r1)]) != page_digest([(k0, r0), (b"z" + k1, r1)])


def test_feeds_with_very_long_names_send_ids_not_keys():
    long_prefix = feed_prefix(b"n" * 500)
    rows = [(long_prefix + i.to_bytes(16, "big"), encode_record(DVVSet({"a.1": 1}, [("a.1", 1, 5 + i, b"v")]))) for i in range(3)]
    assert Joined(rows).uniform_skip() is None


def test_a_message_from_a_peer_that_predates_trailing_fields_is_read_with_their_defaults():
    from ringkv.feeds.messages import FeedScan

    old = FeedScan.from_body(["default", b"f", None, False, 10, None])
    assert (old.session, old.ahead) == (0, 0)
    with pytest.raises(ProtocolError):
        FeedScan.from_body(["default", b"f", None, False])
