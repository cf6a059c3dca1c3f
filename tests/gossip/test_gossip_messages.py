"""Gossip wire messages: decode or raise ProtocolError, nothing else (fuzzed)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ringkv.errors import ProtocolError
from ringkv.gossip import GOSSIP_MESSAGES, GossipNode, Member
from ringkv.gossip.messages import (
    Ack, Gossip, Join, Nack, Ping, PingReq, Sync, SyncDelta, SyncDigest,
)
from ringkv.wire import decode_body, encode_body

M = ["n1", "tcp://127.0.0.1:7101", [1, 2**64 - 1], "up", 3, 4]
META = ["ks/users", 2, "n1", {"n": 3, "r": 2, "w": 2, "mode": "siblings"}]
GOSSIP = [["m", M], ["k", META], ["s", "n2", 1, "n1"], ["d", "n3", 0, "n2"]]

EXAMPLES = [
    Ping(1, "n1", "tcp://127.0.0.1:7101", "n0", GOSSIP),
    Ack(1, "n0", 2, GOSSIP),
    Nack(1, "n2"),
    PingReq(7, "n1", "tcp://127.0.0.1:7101", "n3", "tcp://127.0.0.1:7103", GOSSIP),
    Gossip("n1", GOSSIP),
    Join(M),
    Sync("n1", "tcp://127.0.0.1:7101", [3, 2**64 - 1], 5, list(range(64))),
    Sync("n1", "tcp://127.0.0.1:7101", [3, 7], 5, []),
    SyncDigest("n1", "tcp://127.0.0.1:7101", [0, 63], [["n1", 0, 1, 2, 2**64 - 1]], 0, [META]),
    SyncDelta("n1", "tcp://127.0.0.1:7101", [M], [META], ["n4"], GOSSIP),
]

plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
              st.text(max_size=8), st.binary(max_size=8),
              st.sampled_from(["m", "k", "s", "d", "up", "removed", "n1", "tcp://x"])),
    lambda ch: st.lists(ch, max_size=6) | st.dictionaries(st.text(max_size=4), ch, max_size=3),
    max_leaves=30,
)


def test_every_type_has_an_example():
    assert {type(m) for m in EXAMPLES} == set(GOSSIP_MESSAGES)


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.TYPE)
def test_roundtrip_through_msgpack(msg):
    t, body = encode_body(msg)
    t2, body2 = msgpack.unpackb(msgpack.packb([t, body]))
    assert decode_body(t2, body2) == decode_body(t, body)


def _decode_or_protocol_error(cls, body):
    try:
        decode_body(cls.TYPE, body)
    except ProtocolError:
        pass
    # check() itself (used by the core on hand-built messages) must be just as strict
    try:
        cls.from_body(body)
    except ProtocolError:
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(GOSSIP_MESSAGES), plain)
def test_garbage_bodies_raise_only_protocol_error(cls, body):
    _decode_or_protocol_error(cls, body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(GOSSIP_MESSAGES), st.lists(plain, min_size=0, max_size=8))
def test_garbage_field_lists_raise_only_protocol_error(cls, body):
    _decode_or_protocol_error(cls, body)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _replace(value, path, new):
    if not path:
        return new
    out = list(value)
    out[path[0]] = _replace(out[path[0]], path[1:], new)
    return out


def _fresh_core() -> GossipNode:
    core = GossipNode("n0", "tcp://127.0.0.1:7100", seeds=["tcp://127.0.0.1:7101"])
    core.tick(0.0)
    core.receive("x", SyncDelta("n1", "tcp://127.0.0.1:7101", [M], [], [], []), 0.0)
    return core


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_valid_bodies(msg, data):
    """Near-valid bodies reach the nested checks; whatever decodes is safe to handle."""
    _, body = encode_body(msg)
    body = msgpack.unpackb(msgpack.packb(body))
    paths = list(_paths(body))
    path = data.draw(st.sampled_from(paths))
    body = _replace(body, path, data.draw(plain))
    try:
        decoded = decode_body(msg.TYPE, body)
    except ProtocolError:
        return
    core = _fresh_core()
    for now in (1.0, 5.0):
        core.receive("tcp://x", decoded, now)
        core.tick(now)


@pytest.mark.parametrize("bad", [
    Ping(1, "n1", "tcp://a", "n0", [["m", ["n1", "tcp://a", [-5], "up", 0, 0]]]),
    Ping(-1, "n1", "tcp://a", "n0", []),
    Ack("x", "n1", 0, []),  # type: ignore[arg-type]
    Gossip("n1", [["z"]]),
    Sync("n1", "tcp://a", [1, 0], 0, [0] * 3),
    Sync("n1", "tcp://a", [1, -1], 0, []),
    SyncDelta("n1", "tcp://a", [["n1", "tcp://a", [1], "zombie", 0, 0]], [], [], []),
    Join(["n1", "tcp://a", [1], "up", 0, 2**70]),
])
def test_core_ignores_hand_built_invalid_messages(bad):
    core = _fresh_core()
    before = dict(core.members)
    assert core.receive("tcp://a", bad, 1.0) == []
    assert dict(core.members) == before


def test_member_entries_parse_to_members():
    assert Member.from_wire(M).tokens == (1, 2**64 - 1)
