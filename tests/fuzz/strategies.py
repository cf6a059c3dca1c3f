"""Hypothesis strategies for wire fuzzing: junk values, bodies per message type, raw frames."""

from __future__ import annotations

import msgpack
from hypothesis import strategies as st

from ringkv import wire
from ringkv.envelope import ERROR, ONEWAY, PROTO_VERSION, REPLY, REQUEST

I64_MIN, U64_MAX = -(2**63), 2**64 - 1

#: Integers msgpack can carry, with the edges every decoder should survive.
wire_ints = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, U64_MAX, I64_MIN]),
    st.integers(min_value=I64_MIN, max_value=U64_MAX),
)
#: Any Python integer, including ones no 64-bit field can hold.
huge_ints = st.one_of(wire_ints, st.integers(min_value=-(2**256), max_value=2**256))

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    wire_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=64),
    st.sampled_from(["", "default", "up", "down", "m", "k", "s", "d", "kv.get", "\x00", "é" * 3]),
)


def junk(leaves=_leaves, max_leaves: int = 30):
    """Nested lists and maps of msgpack-able values."""
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=6),
            st.dictionaries(st.one_of(st.text(max_size=8), st.binary(max_size=8), wire_ints), inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


wire_junk = junk()
#: Junk for sans-IO decoding: also tuples and integers of any size.
any_junk = junk(st.one_of(_leaves, huge_ints))


def _field_value(allowed, optional: bool, leaves):
    """A value for one field: mostly of an allowed type, sometimes anything else."""
    right = []
    for t in allowed or (object,):
        if t is int:
            right.append(leaves[1])
        elif t is float:
            right.append(st.floats(allow_nan=True, allow_infinity=True))
        elif t is str:
            right.append(st.text(max_size=24))
        elif t is bytes:
            right.append(st.binary(max_size=40))
        elif t is bool:
            right.append(st.booleans())
        elif t in (list, tuple):
            right.append(st.lists(leaves[0], max_size=5))
        elif t is dict:
            right.append(st.dictionaries(st.text(max_size=8), leaves[0], max_size=3))
        else:
            right.append(leaves[0])
    if optional:
        right.append(st.none())
    return st.one_of(st.one_of(right), leaves[0])


def bodies(cls: type[wire.Message], *, network: bool = True):
    """Bodies for ``cls``: near-valid ones (right length, field types mostly right), wrong lengths, junk."""
    leaves = (wire_junk, wire_ints) if network else (any_junk, huge_ints)
    fields = [_field_value(allowed, optional, leaves) for _, allowed, optional in cls._checks]
    n = len(fields)
    near = st.tuples(*fields).map(list) if fields else st.just([])
    return st.one_of(
        near,
        near.flatmap(lambda b: st.lists(leaves[0], max_size=2).map(lambda extra: b + extra)),  # too many fields
        near.map(lambda b: b[: max(0, n - 1)]),  # too few
        leaves[0],
    )


def message_types() -> list[str]:
    import ringkv.server  # noqa: F401  (registers every message type of a node)

    return sorted(wire.registry())


def raw_frames():
    """Bytes a peer could send instead of a frame: random, truncated or odd msgpack."""

    def pack(obj) -> bytes:
        return msgpack.packb(obj, use_bin_type=True)

    envelope = st.lists(
        st.one_of(st.sampled_from([REQUEST, REPLY, ERROR, ONEWAY, 4, -1, True]), wire_junk), min_size=0, max_size=7
    )
    return st.one_of(
        st.binary(max_size=512),
        st.tuples(st.sampled_from([PROTO_VERSION, 0, 2, True, None]), st.lists(envelope, max_size=4)).map(lambda t: pack(list(t))),
        wire_junk.map(pack),
        st.binary(max_size=64).map(lambda b: b"\x92\x01" + b),
        st.integers(min_value=1, max_value=4000).map(lambda n: b"\x92\x01" + b"\x91" * n),  # nesting bomb
        st.sampled_from([b"\x92\x01\xdd\xff\xff\xff\xff", b"\x92\x01\x91\x95\x00\x01\xa1t\xc0\xc6\x7f\xff\xff\xff", b""]),
    )
