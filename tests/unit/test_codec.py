"""Record codec: round trips, and corrupt bytes never escape as anything but CorruptRecord."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ringkv.codec import decode_parts, decode_record, encode_one, encode_record, one_value, replaces_one, supersedes_one
from ringkv.errors import CorruptRecord
from ringkv.quorum.aae import record_digest
from ringkv.quorum.dvv import DVVSet, sync, sync_lww, update, update_lww
from ringkv.result import Result

entries = st.lists(
    st.tuples(st.sampled_from(["a.1", "b.2", "c.3"]), st.integers(1, 2**40), st.integers(0, 2**63 - 1), st.one_of(st.none(), st.binary(max_size=64))),
    max_size=4,
)


@given(st.dictionaries(st.sampled_from(["a.1", "b.2", "c.3"]), st.integers(0, 2**40)), entries)
def test_round_trip(clock, ents):
    rec = DVVSet(clock, ents)
    assert decode_record(encode_record(rec)) == rec


@given(st.dictionaries(st.sampled_from(["a.1", "b.2", "c.3"]), st.integers(0, 2**40)), entries)
def test_a_read_decoded_lazily_equals_one_decoded_at_once(clock, ents):
    raw = encode_record(DVVSet(clock, ents))
    value = one_value(raw)
    live = [e[3] for e in ents if e[3] is not None]
    if value is None:  # only one-value records take the lazy path
        assert len(ents) != 1 or ents[0][3] is None
        return
    assert [value] == live
    clock_now, entries_now = decode_parts(raw)
    eager = Result(live, clock_now, entries_now)
    lazy = Result.of_record(value, raw)
    assert (lazy.timestamp, lazy.context, lazy.values) == (eager.timestamp, eager.context, eager.values)


@given(st.dictionaries(st.sampled_from(["a.1", "b.2", "c.3"]), st.integers(0, 2**40)), entries, st.binary(min_size=1, max_size=24))
def test_a_digest_from_decoded_parts_equals_one_from_the_bytes(clock, ents, skey):
    # writers hand the tree observer the parts they decoded; the tree must not tell the difference
    raw = encode_record(DVVSet(clock, ents))
    assert record_digest(skey, raw, decode_parts(raw)) == record_digest(skey, raw)
    assert record_digest(skey, raw, (clock, ents)) == record_digest(skey, raw)


@pytest.mark.parametrize("raw", [b"\x02", b"\x02\x00\x00\x00", b"\x02\x00\x00\x00\x00abc", b"\x02\x00\x00\x00\x09ab", b"\x02\x00\x00\x00\x01\xc1abc"])
def test_a_corrupt_one_value_record_is_never_read_as_a_good_one(raw):
    value = one_value(raw)
    if value is None:  # the read decodes it, and says it is corrupt
        with pytest.raises(CorruptRecord):
            decode_parts(raw)
        return
    res = Result.of_record(value, raw)  # a header that only looks like one: the context says so, every time
    for _ in range(2):
        with pytest.raises(CorruptRecord):
            res.context
        with pytest.raises(CorruptRecord):
            res.timestamp


@given(st.text(min_size=1, max_size=300), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.booleans(), st.binary(max_size=64))
def test_a_new_keys_record_encodes_as_the_general_encoder_does(actor, counter, ts, local, value):
    # equal records must be equal bytes on every replica, whichever encoder wrote them;
    # a local write's counter is its timestamp (the templated header), others go through msgpack
    if local:
        counter = ts
    assert encode_one(actor, counter, ts, value) == encode_record(DVVSet({actor: counter}, [(actor, counter, ts, value)]))


# timestamps a few apart (so every order between them comes up), at both ends of the u64 encoding
near = st.one_of(st.integers(0, 4).map(lambda x: 2**40 + x), st.integers(0, 3).map(lambda x: 2**64 - 5 + x), st.sampled_from([2**32 - 1, 2**32]))
local_records = st.one_of(
    # any record, and the one-value records a local write stores (most of them end up here)
    st.builds(DVVSet, st.dictionaries(st.sampled_from(["a.1", "b.2"]), st.one_of(st.integers(0, 2**40), near)), entries),
    st.builds(lambda c, d, t, v: DVVSet({"a.1": c}, [("a.1", min(c, d), t, v)]), near, near, near, st.binary(max_size=16)),
    st.builds(lambda c, t, v: DVVSet({"a.1": c}, [("b.2", c, t, v)]), near, near, st.binary(max_size=16)),
)


@settings(max_examples=300)
@given(local_records, near, st.booleans(), st.binary(max_size=16))
@example(DVVSet({"a.1": 2**40}, [("a.1", 2**40, 2**40 + 9, b"v")]), 2**40 + 1, True, b"w")  # an older dot with a later timestamp wins
@example(DVVSet({"a.1": 2**40 + 2}, [("a.1", 2**40, 2**40, b"v")]), 2**40 + 1, False, b"w")  # the clock saw more than the write
def test_a_plain_overwrite_skips_decoding_only_when_the_result_is_the_same(rec, ts, lww, value):
    # the embedded put's shortcut: a one-value record of our actor, older than the write, is replaced whole
    raw = encode_record(rec)
    general = encode_record((update_lww if lww else update)(rec, None, value, "a.1", ts, ts))
    if supersedes_one(raw, "a.1", ts):
        assert encode_one("a.1", ts, ts, value) == general
    own = set(rec.clock) == {"a.1"} and len(rec.entries) == 1 and rec.entries[0][0] == "a.1" and rec.entries[0][3] is not None
    if own and max(rec.clock["a.1"], rec.entries[0][2]) < ts and min(rec.clock["a.1"], rec.entries[0][1], rec.entries[0][2]) >= 2**32:
        assert rec.entries[0][1] > rec.clock["a.1"] or supersedes_one(raw, "a.1", ts)  # and it is taken


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_corrupt_record(data):
    try:
        decode_record(data)
    except CorruptRecord:
        pass


@given(st.data())
def test_truncated_and_mutated_records_raise_only_corrupt_record(data):
    raw = bytearray(encode_record(DVVSet({"a.1": 3}, [("a.1", 3, 99, b"value"), ("b.2", 1, 98, None)])))
    cut = data.draw(st.integers(0, len(raw)))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    for candidate in (bytes(raw[:cut]), bytes(raw)):
        try:
            decode_record(candidate)
        except CorruptRecord:
            pass


def _one_value_record(clock) -> bytes:
    head = msgpack.packb([clock, "a.1", 1, 1])
    return b"\x02" + len(head).to_bytes(4, "big") + head + b"v"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x07" + msgpack.packb([{}, []]),  # unknown format version
        b"\x02\x00\x00\x00\x09" + msgpack.packb([{}, "a.1", 1, 1]),  # single-value header longer than the record
        b"\x02\x00\x00\x00\x04" + msgpack.packb([{}, "a.1", 1]) + b"v",  # header too short
        b"\x02\x00\x00",  # truncated length
        b"\x01" + msgpack.packb([{}, [["a.1", 1, 1, 5]]]),  # int value
        b"\x01" + msgpack.packb([{}, [["a.1", "x", 1, b"v"]]]),  # str counter
        b"\x01" + msgpack.packb([[], []]),  # clock not a map
        b"\x01" + msgpack.packb({"a": 1}),
        b"\x01" + msgpack.packb([{"a.1": "x"}, []]),  # counter in the clock not an int: no merge could use it
        b"\x01" + msgpack.packb([{1: 2}, []]),  # actor in the clock not a str
        _one_value_record({"a.1": [1]}),
    ],
)
def test_known_bad_records(payload):
    with pytest.raises(CorruptRecord):
        decode_record(payload)


@given(st.lists(st.tuples(st.dictionaries(st.sampled_from(["a.1", "b.2"]), st.integers(0, 2**40)), entries), max_size=20))
def test_live_values_match_record_by_record_decoding(records):
    """The scan fast path gives each record's live value exactly as a full decode does."""
    from ringkv.codec import FORMAT_ONE, live_value, live_values

    raws = [encode_record(DVVSet(clock, ents)) for clock, ents in records]
    for raw, (_, ents) in zip(raws, records):
        assert (raw[0] == FORMAT_ONE) == (len(ents) == 1 and ents[0][3] is not None)
    assert live_values(raws) == [live_value(decode_record(r).entries) for r in raws]


def test_live_values_name_a_corrupt_record():
    from ringkv.codec import live_values

    good = encode_record(DVVSet({"a.1": 1}, [("a.1", 1, 5, b"v")]))
    with pytest.raises(CorruptRecord):
        live_values([good, b"\x02\x00\x00\x00\x09" + msgpack.packb([{}, "a.1", 1, 1])])


incoming_records = st.one_of(
    st.builds(lambda a, c, d, t, v: DVVSet({a: c}, [(a, min(c, d), t, v)]), st.sampled_from(["a.1", "b.2"]), near, near, near, st.binary(max_size=16)),
    st.builds(DVVSet, st.dictionaries(st.sampled_from(["a.1", "b.2"]), near), entries),
)


@settings(max_examples=300)
@given(local_records, incoming_records)
@example(DVVSet({"a.1": 2**40 + 1}, [("a.1", 2**40, 2**40, b"v")]), DVVSet({"a.1": 2**40 + 3}, [("a.1", 2**40 + 1, 2**40 + 2, b"w")]))  # a dot the clock saw
@example(DVVSet({"a.1": 2**40}, [("a.1", 2**40, 2**40 + 5, b"v")]), DVVSet({"a.1": 2**40 + 3}, [("a.1", 2**40 + 2, 2**40 + 2, b"w")]))  # older in time
def test_a_replica_stores_an_incoming_record_as_is_only_when_the_merge_gives_it_back(local, incoming):
    # the replica's shortcut for the next write of a key from its coordinator
    raw = encode_record(local)
    if replaces_one(raw, incoming.clock, incoming.entries):
        assert sync(local, incoming) == incoming
        assert sync_lww(local, incoming) == incoming
    one = len(local.entries) == 1 and len(incoming.entries) == 1 and local.entries[0][3] is not None and incoming.entries[0][3] is not None
    if one and set(local.clock) == set(incoming.clock) == {local.entries[0][0]} == {incoming.entries[0][0]} and local.entries[0][1] <= local.clock[local.entries[0][0]]:
        (actor, counter, ts, _), (_, old_counter, old_ts, _) = incoming.entries[0], local.entries[0]
        fits = min(local.clock[actor], old_counter, old_ts) >= 2**32
        if fits and local.clock[actor] < counter <= incoming.clock[actor] and old_ts < ts:
            assert replaces_one(raw, incoming.clock, incoming.entries)  # and it is taken
