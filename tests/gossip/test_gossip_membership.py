"""Membership and metadata CRDT laws (hypothesis) and the fingerprinted stores."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ringkv.errors import BadRequest, ProtocolError
from ringkv.gossip import (
    LEFT, REMOVED, STATUSES, TERMINAL, UP, Member, MetaEntry,
    merge_member, merge_meta, merge_metadata, merge_views,
)
from ringkv.gossip.membership import MetadataMap, View, check_member_wire

IDS = ["a", "b", "c", "d"]

members = st.builds(
    Member,
    node_id=st.sampled_from(IDS),
    addr=st.sampled_from(["tcp://h:1", "tcp://h:2"]),
    tokens=st.lists(st.integers(0, 2**64 - 1), max_size=3).map(tuple),
    status=st.sampled_from(STATUSES),
    incarnation=st.integers(0, 3),
    counter=st.integers(0, 3),
)
views = st.lists(members, max_size=8).map(lambda ms: _fold(ms))
meta_entries = st.builds(
    MetaEntry,
    key=st.sampled_from(["ks/users", "ks/feeds", "x"]),
    counter=st.integers(0, 3),
    writer=st.sampled_from(IDS),
    value=st.one_of(st.none(), st.integers(-2**63, 2**63), st.text(max_size=5),
                    st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2)),
)
metas = st.lists(meta_entries, max_size=6).map(lambda es: _fold_meta(es))


def _fold(ms: list[Member]) -> dict[str, Member]:
    out: dict[str, Member] = {}
    for m in ms:
        out[m.node_id] = merge_member(out.get(m.node_id), m)  # type: ignore[assignment]
    return out


def _fold_meta(es: list[MetaEntry]) -> dict[str, MetaEntry]:
    out: dict[str, MetaEntry] = {}
    for e in es:
        out[e.key] = merge_meta(out.get(e.key), e)  # type: ignore[assignment]
    return out


@given(views, views)
def test_view_merge_commutative(a, b):
    assert merge_views(a, b) == merge_views(b, a)


@given(views, views, views)
def test_view_merge_associative(a, b, c):
    assert merge_views(merge_views(a, b), c) == merge_views(a, merge_views(b, c))


@given(views)
def test_view_merge_idempotent(a):
    assert merge_views(a, a) == a


@given(metas, metas, metas)
def test_metadata_merge_laws(a, b, c):
    assert merge_metadata(a, b) == merge_metadata(b, a)
    assert merge_metadata(merge_metadata(a, b), c) == merge_metadata(a, merge_metadata(b, c))
    assert merge_metadata(a, a) == a


@given(st.lists(members, max_size=10), st.randoms())
def test_view_store_fingerprint_is_order_independent(ms, rnd):
    """Incremental bucket fingerprints depend only on the merged result."""
    shuffled = list(ms)
    rnd.shuffle(shuffled)
    v1, v2 = View(ms), View(shuffled)
    assert v1.as_dict() == v2.as_dict() == _fold(ms)
    assert v1.buckets() == v2.buckets() and v1.fingerprint() == v2.fingerprint()


@given(members, st.lists(members, max_size=10))
def test_terminal_entries_are_never_undone(m, others):
    """Once removed, a member stays removed whatever stale or newer live gossip says."""
    removed = Member(m.node_id, m.addr, m.tokens, REMOVED, m.incarnation, m.counter + 1)
    merged = _fold([removed] + [o for o in others if o.node_id == m.node_id])
    assert merged[m.node_id].status in TERMINAL
    if all(o.status != REMOVED for o in others):
        assert merged[m.node_id] == removed


def test_removal_beats_any_live_version_and_left():
    live = Member("a", "tcp://h:1", (1,), UP, 9, 9)
    removed = Member("a", "tcp://h:1", (1,), REMOVED, 0, 1)
    left = Member("a", "tcp://h:1", (1,), LEFT, 5, 0)
    assert merge_member(live, removed) == removed
    assert merge_member(left, removed) == removed
    assert merge_member(live, left) == left


def test_concurrent_removals_converge_by_content():
    r1 = Member("a", "tcp://h:1", (1,), REMOVED, 2, 3)
    r2 = Member("a", "tcp://h:2", (1,), REMOVED, 2, 3)
    assert merge_member(r1, r2) == merge_member(r2, r1)


def test_member_validation():
    with pytest.raises(BadRequest):
        Member("a", "tcp://h:1", (-1,))
    with pytest.raises(BadRequest):
        Member("a", "tcp://h:1", (), "zombie")
    with pytest.raises(BadRequest):
        Member("", "tcp://h:1")
    with pytest.raises(ProtocolError):
        check_member_wire(["a", "tcp://h:1", [1, "2"], UP, 0, 0])
    with pytest.raises(ProtocolError):
        check_member_wire(["a", "tcp://h:1", [1], [UP], 0, 0])
    assert Member.from_wire(["a", "tcp://h:1", [1, 2], UP, 1, 2]) == Member("a", "tcp://h:1", (1, 2), UP, 1, 2)


def test_metadata_store_hides_deletions_and_tracks_fp():
    m1, m2 = MetadataMap(), MetadataMap()
    e1 = MetaEntry("ks", 1, "a", {"n": 3})
    e2 = MetaEntry("ks", 2, "b", None)
    assert m1.merge(e1) and m1.values() == {"ks": {"n": 3}}
    assert m1.merge(e2) and m1.values() == {}
    assert not m1.merge(e1)
    m2.merge(e2)
    m2.merge(e1)
    assert m1.fp == m2.fp
    with pytest.raises(BadRequest):
        MetaEntry("ks", 1, "a", object())


@settings(max_examples=50)
@given(st.lists(meta_entries, max_size=8), st.randoms())
def test_metadata_store_matches_pure_merge(es, rnd):
    a, b = MetadataMap(), MetadataMap()
    shuffled = list(es)
    rnd.shuffle(shuffled)
    for e in es:
        a.merge(e)
    for e in shuffled:
        b.merge(e)
    assert a.fp == b.fp
    assert {e.key: e for e in a.entries()} == _fold_meta(es)
