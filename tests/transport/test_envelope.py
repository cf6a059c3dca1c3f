"""The envelope codec: round trips, and one contract under bad input."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringkv import errors, wire
from ringkv.envelope import (
    ERROR,
    ONEWAY,
    REPLY,
    REQUEST,
    Codec,
    Envelope,
    decode,
    encode,
)


@wire.message("transport_envelope_test.note")
class Note(wire.Message):
    text: str
    n: int
    blob: bytes | None = None


def test_round_trip_every_kind():
    envs = [
        Envelope.request(1, Note("a", 1), budget_ms=250),
        Envelope.reply(1, Note("b", 2, b"\x00\xff")),
        Envelope.error(2, errors.QuorumError(acks=1, required=2, failed=["tcp://n3"])),
        Envelope.oneway(Note("c", 3)),
        Envelope.oneway(Note("d", 4), budget_ms=0),
    ]
    got = decode(encode(envs))
    assert got == envs
    assert got[0].message() == Note("a", 1)
    assert got[1].message() == Note("b", 2, b"\x00\xff")
    exc = got[2].exception()
    assert type(exc) is errors.QuorumError
    assert (exc.acks, exc.required, exc.failed) == (1, 2, ["tcp://n3"])


def test_single_envelope_and_header_layout():
    frame = encode(Envelope.request(7, Note("x", 0)))
    version, items = msgpack.unpackb(frame)
    assert version == 1
    # a trailing field left at its default is not sent
    assert items == [[REQUEST, 7, "transport_envelope_test.note", None, ["x", 0]]]
    _, items = msgpack.unpackb(encode(Envelope.request(7, Note("x", 0, b"b"))))
    assert items[0][4] == ["x", 0, b"b"]


@wire.message("transport_envelope_test.note_v1")
class NoteV1(wire.Message):
    """``Note`` as a peer that predates its ``blob`` field knows it."""

    text: str
    n: int


def test_a_peer_that_predates_a_trailing_field_reads_messages_that_leave_it_at_its_default():
    body = Note("x", 3).to_body()
    assert NoteV1.from_body(body) == NoteV1("x", 3)
    with pytest.raises(errors.ProtocolError):
        NoteV1.from_body(Note("x", 3, b"new").to_body())  # a field it cannot know is refused, not dropped
    assert Note.from_body(NoteV1("y", 4).to_body()) == Note("y", 4), "and a newer peer reads an older one"
    # a value equal to the default but of another type is still sent
    assert Note("x", 0, b"").to_body() == ["x", 0, b""]


def test_frames_split_under_max_size():
    codec = Codec(max_size=1024)
    parts = [codec.part(ONEWAY, 0, Note.TYPE, None, codec.pack_body(["x" * 100, i, None])) for i in range(50)]
    frames = codec.frames(parts)
    assert len(frames) > 1
    assert sum(n for _, n in frames) == 50
    seen = []
    for frame, n in frames:
        assert len(frame) <= 1024
        envs = codec.decode(frame)
        assert len(envs) == n
        seen += [e.message().n for e in envs]
    assert seen == list(range(50))


def test_too_large_and_unencodable_bodies_are_local_errors():
    codec = Codec(max_size=1024)
    with pytest.raises(errors.TooLarge):
        codec.pack_body([b"x" * 2000])
    with pytest.raises(errors.WrongType):
        codec.pack_body([object()])
    with pytest.raises(errors.BadRequest):
        codec.pack_body([2**80])
    with pytest.raises(errors.TooLarge):
        encode([Envelope.oneway(Note("x" * 600, 1))] * 2, max_size=1024)


def _env(kind=REQUEST, rid=1, type_="t.x", budget=None, body=None):
    return [kind, rid, type_, budget, [] if body is None else body]


def _frame(*items, version=1):
    return msgpack.packb([version, list(items)], use_bin_type=True)


BAD_FRAMES = {
    "empty": b"",
    "random": b"\x8f\x13\xa7\x00\xff\x02",
    "truncated": encode(Envelope.request(1, Note("abc", 1)))[:-3],
    "trailing data": encode(Envelope.request(1, Note("abc", 1))) + b"\x00",
    "not an array": msgpack.packb({"a": 1}),
    "three items": msgpack.packb([1, [_env()], 3]),
    "no envelopes": _frame(),
    "unknown version": _frame(_env(), version=2),
    "bool version": msgpack.packb([True, [_env()]]),
    "unknown kind": _frame(_env(kind=9)),
    "bool kind": _frame(_env(kind=False)),
    "bool request id": _frame(_env(rid=True)),
    "negative request id": _frame(_env(rid=-1)),
    "request without id": _frame(_env(rid=0)),
    "one-way with id": _frame(_env(kind=ONEWAY, rid=5)),
    "float request id": _frame(_env(rid=1.0)),
    "bytes type": _frame(_env(type_=b"t.x")),
    "empty type": _frame(_env(type_="")),
    "long type": _frame(_env(type_="x" * 200)),
    "bool budget": _frame(_env(budget=True)),
    "negative budget": _frame(_env(budget=-5)),
    "huge budget": _frame(_env(budget=2**40)),
    "budget on a reply": _frame(_env(kind=REPLY, budget=10)),
    "error body not a list": _frame(_env(kind=ERROR, type_="quorum", body="boom")),
    "error details not a map": _frame(_env(kind=ERROR, type_="quorum", body=["m", []])),
    "envelope too short": _frame([REQUEST, 1, "t.x"]),
    "envelope not a list": _frame("hello"),
    "huge array length": b"\x92\x01\xdd\xff\xff\xff\xff",
    "huge bin length": b"\x92\x01\x91\x95\x00\x01\xa3t.x\xc0\xc6\x7f\xff\xff\xff",
    "huge str length": b"\x92\x01\x91\x95\x00\x01\xdb\x7f\xff\xff\xff",
    "huge map length": b"\x92\x01\xdf\x7f\xff\xff\xff",
    "depth bomb": b"\x92\x01" + b"\x91" * 100_000 + b"\xc0",
    "ext type": _frame(_env(body=[msgpack.ExtType(5, b"xyz")])),
    "timestamp ext": _frame(_env(body=[msgpack.Timestamp(1, 2)])),
    "int map key": _frame(_env(body=[{1: 2}])),
    "invalid utf-8": b"\x92\x01\x91\x95\x00\x01\xa3\xff\xfe\xfd\xc0\x90",
    "reserved byte": b"\xc1",
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_bad_frames_raise_protocol_error(name):
    with pytest.raises(errors.ProtocolError):
        decode(BAD_FRAMES[name])


def test_frame_over_max_size_is_refused_before_parsing():
    frame = encode(Envelope.oneway(Note("x" * 5000, 1)))
    assert decode(frame)  # fine at the default limit
    with pytest.raises(errors.ProtocolError, match="over"):
        decode(frame, max_size=1024)


def test_salvage_lists_readable_ids_of_a_refused_frame():
    frame = _frame(_env(rid=3), _env(kind=REPLY, rid=4), _env(rid=5, type_=7), _env(kind=ONEWAY, rid=0))
    with pytest.raises(errors.ProtocolError) as info:
        decode(frame)
    assert info.value.salvage == [(REQUEST, 3), (REPLY, 4), (REQUEST, 5)]


def test_unknown_type_fails_per_envelope_not_per_frame():
    frame = _frame(_env(rid=1, type_="nobody.knows"), _env(rid=2, type_=Note.TYPE, body=["a", 1, None]))
    unknown, known = decode(frame)
    with pytest.raises(errors.ProtocolError, match="unknown message type"):
        unknown.message()
    assert known.message() == Note("a", 1)


# ---------------------------------------------------------------- fuzzing

VALID = [
    encode(Envelope.request(1, Note("abc", 2, b"xyz"), budget_ms=100)),
    encode([Envelope.reply(9, Note("r", -1)), Envelope.oneway(Note("o", 2**40))]),
    encode(Envelope.error(3, errors.QuorumError(acks=2, required=3, failed=["a"]))),
]

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=25,
)


def _check(frame: bytes) -> None:
    """The contract: decode (and decode bodies) or raise ProtocolError; nothing else."""
    try:
        envs = decode(frame)
    except errors.ProtocolError:
        return
    for env in envs:
        assert isinstance(env, Envelope)
        if env.kind == ERROR:
            assert isinstance(env.exception(), errors.RingKVError)
        else:
            try:
                env.message()
            except errors.ProtocolError:
                pass


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    _check(data)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_frames(frame, data):
    buf = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and buf:
            del buf[pos : pos + data.draw(st.integers(1, 4))]
        elif op == "truncate":
            del buf[pos:]
    _check(bytes(buf))


@FUZZ
@given(msgpack_values)
def test_any_msgpack_value(value):
    _check(msgpack.packb(value, use_bin_type=True))


@FUZZ
@given(
    st.integers(0, 5) | st.booleans(),
    st.integers(-1, 2**64 - 1) | st.booleans() | st.none(),
    st.sampled_from([Note.TYPE, "quorum", "x"]) | st.text(max_size=3) | st.binary(max_size=3),
    st.none() | st.integers(-1, 2**33) | st.booleans(),
    msgpack_values,
)
def test_envelope_shaped_values(kind, rid, type_, budget, body):
    _check(_frame([kind, rid, type_, budget, body]))
