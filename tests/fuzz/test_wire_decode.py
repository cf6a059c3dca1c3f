"""Sans-IO: decoding a body of any registered type either builds the message or raises ProtocolError.

That is the decoder's only contract (h11's fuzzing rule): no TypeError, no
KeyError, no RecursionError escapes, whatever a peer sends.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringkv import wire
from ringkv.envelope import decode
from ringkv.errors import ProtocolError

sys.path.insert(0, str(Path(__file__).parent))
from strategies import any_junk, bodies, message_types, raw_frames

TYPES = message_types()
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_protocol_error(type_name, body) -> None:
    try:
        msg = wire.decode_body(type_name, body)
    except ProtocolError:
        return
    assert isinstance(msg, wire.registry()[type_name])


def test_every_message_type_is_fuzzed():
    # the node's whole vocabulary: quorum, feeds, gossip, streaming, anti-entropy, status
    prefixes = {t.split(".")[0] for t in TYPES}
    assert {"kv", "replica", "feed", "gossip", "stream", "aae", "node", "cluster", "keyspace"} <= prefixes


@FUZZ
@given(st.data())
def test_near_valid_bodies_of_every_type(data):
    type_name = data.draw(st.sampled_from(TYPES))
    body = data.draw(bodies(wire.registry()[type_name], network=False))
    _decodes_or_protocol_error(type_name, body)


@FUZZ
@given(st.sampled_from(TYPES), any_junk)
def test_junk_bodies_of_every_type(type_name, body):
    _decodes_or_protocol_error(type_name, body)


@FUZZ
@given(st.data())
def test_bodies_that_went_through_msgpack(data):
    # what a node actually receives: msgpack-decoded lists, maps, ints up to 64 bits
    type_name = data.draw(st.sampled_from(TYPES))
    body = data.draw(bodies(wire.registry()[type_name]))
    raw = msgpack.packb(body, use_bin_type=True)
    _decodes_or_protocol_error(type_name, msgpack.unpackb(raw, raw=False, strict_map_key=False))


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=30), any_junk), any_junk)
def test_unknown_types_are_protocol_errors(type_name, body):
    if isinstance(type_name, str) and type_name in wire.registry():
        return
    try:
        wire.decode_body(type_name, body)
    except ProtocolError:
        return
    raise AssertionError(f"decoded an unknown type {type_name!r}")


@FUZZ
@given(raw_frames())
def test_frames_decode_or_raise_protocol_error(frame):
    try:
        envs = decode(frame)
    except ProtocolError:
        return
    for env in envs:  # a frame that decodes still has bodies to check
        if env.kind in (0, 1, 3):
            try:
                env.message()
            except ProtocolError:
                pass
