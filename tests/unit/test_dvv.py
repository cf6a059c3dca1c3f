"""Dotted version vector sets: the laws replicas rely on to never lose a write."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from ringkv.errors import BadRequest, WrongType
from ringkv.quorum.dvv import DVVSet, decode_context, encode_context, sync, sync_lww, update, update_lww

ACTORS = ["a.1", "b.1", "c.1"]


@st.composite
def histories(draw):
    """Random programs over 3 replicas: writes (with no, fresh or stale context), deletes and syncs.

    Returns the replicas' final records plus the model: every dot written and
    the dots some write's context superseded.
    """
    reps: list[DVVSet | None] = [None, None, None]
    reads: list[dict] = [{}]
    written: set = set()
    superseded: set = set()
    ts = 0
    for _ in range(draw(st.integers(1, 25))):
        op = draw(st.sampled_from(["write", "write", "delete", "sync", "read"]))
        i = draw(st.integers(0, 2))
        if op == "sync":
            j = draw(st.integers(0, 2))
            merged = sync(reps[i], reps[j])
            reps[i] = reps[j] = merged
        elif op == "read":
            reads.append(dict(reps[i].clock) if reps[i] else {})
        else:
            mode = draw(st.sampled_from(["none", "read"]))
            ctx = None if mode == "none" else draw(st.sampled_from(reads))
            effective = (reps[i].clock if reps[i] else {}) if ctx is None else ctx
            superseded |= {d for d in written if effective.get(d[0], 0) >= d[1]}
            ts += 1
            value = None if op == "delete" else f"v{ts}".encode()
            reps[i] = update(reps[i], ctx, value, ACTORS[i], ts)
            new = [e for e in reps[i].entries if e[2] == ts][0]
            written.add((new[0], new[1]))
    return reps, written, superseded


def _full_sync(reps):
    out = None
    for r in reps:
        out = sync(out, r)
    return out


@settings(max_examples=300, deadline=None)
@given(histories())
def test_no_write_is_lost_and_only_superseded_writes_disappear(h):
    reps, written, superseded = h
    merged = _full_sync(reps)
    assert merged.dots() == written - superseded


@settings(max_examples=200, deadline=None)
@given(histories(), histories())
def test_sync_is_commutative_associative_idempotent(h1, h2):
    a, b, c = h1[0][0], h1[0][1], h2[0][2]
    assert sync(a, b) == sync(b, a)
    assert sync(sync(a, b), c) == sync(a, sync(b, c))
    assert sync(a, a) == (a if a is not None else DVVSet())
    m = sync(a, b)
    assert sync(m, a) == m


@settings(max_examples=200, deadline=None)
@given(histories())
def test_sync_lww_is_a_join(h):
    a, b, c = h[0]
    assert sync_lww(a, b) == sync_lww(b, a)
    assert sync_lww(sync_lww(a, b), c) == sync_lww(a, sync_lww(b, c))
    m = sync_lww(a, b)
    assert sync_lww(m, m) == m
    assert len(m.entries) <= 1


def test_write_with_read_context_supersedes_exactly_what_the_read_saw():
    r1 = update(None, None, b"v1", "a.1", 1)
    seen = dict(r1.clock)
    r2 = update(r1, {}, b"v2", "a.1", 2)  # concurrent with v1 (empty context)
    assert sorted(r2.values) == [b"v1", b"v2"]
    r3 = update(r2, seen, b"v3", "a.1", 3)  # saw v1 only
    assert sorted(r3.values) == [b"v2", b"v3"]
    r4 = update(r3, r3.clock, b"v4", "a.1", 4)
    assert r4.values == [b"v4"]


def test_concurrent_writes_on_different_replicas_become_siblings_and_a_merged_put_collapses_them():
    base = update(None, None, b"v0", "a.1", 1)
    ctx = dict(base.clock)
    left = update(base, ctx, b"left", "a.1", 2)
    right = update(base, ctx, b"right", "b.1", 3)
    merged = sync(left, right)
    assert sorted(merged.values) == [b"left", b"right"]
    resolved = update(merged, merged.clock, b"both", "c.1", 4)
    assert resolved.values == [b"both"]
    assert sync(resolved, left).values == [b"both"]


def test_tombstone_is_a_versioned_entry():
    r = update(None, None, b"v", "a.1", 1)
    d = update(r, r.clock, None, "a.1", 2)
    assert d.is_deleted and d.values == []
    assert sync(d, r).is_deleted  # the stale copy cannot bring the value back
    concurrent = update(r, {}, b"w", "b.1", 3)  # a write that never saw the delete survives it
    assert sync(d, concurrent).values == [b"w"]


def test_lww_keeps_latest_timestamp_whatever_the_arrival_order():
    a = update_lww(None, None, b"new", "a.1", 20)
    b = update_lww(None, None, b"old", "b.1", 10)
    assert sync_lww(a, b).values == [b"new"] == sync_lww(b, a).values
    c = update_lww(a, None, b"older-event", "a.1", 5)
    assert c.values == [b"new"]


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 2**62 - 1), max_size=6))
def test_context_round_trip(clock):
    assert decode_context(encode_context(clock)) == clock


def test_a_context_counter_beyond_any_clock_is_forged():
    with pytest.raises(BadRequest):
        decode_context(encode_context({"a.1": 2**62}))


@pytest.mark.parametrize("bad", [b"", b"\xc1", b"\x93\x01\x02\x03", encode_context({})[:0] + b"\x92\x01\x01", b"\x92\xa1a\xff"])
def test_garbage_context_is_bad_request(bad):
    with pytest.raises(BadRequest):
        decode_context(bad)


def test_context_of_wrong_type():
    with pytest.raises(WrongType):
        decode_context("not-bytes")
