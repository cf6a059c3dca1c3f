"""A live node fed fuzzed wire traffic keeps serving and keeps its data.

An in-process :class:`ringkv.Node` on 127.0.0.1 (port 0) stores a few keys
and feed entries; a raw ZeroMQ DEALER then sends it, for every registered
message type, valid envelopes with invalid bodies (wrong field counts and
types, edge and huge integers, nested junk), and raw random frames. Every
request with a readable envelope must be answered (a reply or a typed
error), and afterwards the node answers valid requests and every stored
record is byte-for-byte what it was.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ringkv.feeds.messages import FeedReplicaScan
from ringkv.quorum.messages import KvGet, LocalGet

import ringkv
from ringkv import wire
from ringkv.envelope import ERROR, ONEWAY, REPLY, REQUEST, Codec, decode

sys.path.insert(0, str(Path(__file__).parent))
from strategies import bodies, message_types, raw_frames, wire_junk

TYPES = message_types()
KEYSPACE = "fuzz_stored_keyspace"
FEED = b"fuzz-stored-feed-name"
KEYS = [b"fuzz-stored-key-%d" % i for i in range(5)]
REPLY_TIMEOUT_MS = 8000  # above the node's own 5 s request deadline
#: Requests that stop or reshape the node itself are not fuzzed as valid messages.
_RIDS = itertools.count(1)


class Raw:
    """A raw DEALER talking envelopes to one node."""

    def __init__(self, addr: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, b"fuzzer#" + str(id(self)).encode())
        self.sock.connect(addr)
        self.codec = Codec()

    def frame(self, kind: int, rid: int, type_name: str, body) -> bytes:
        part = self.codec.part(kind, rid, type_name, None, self.codec.pack_body(body))
        return self.codec.frames([part])[0][0]

    def send(self, *parts: bytes) -> None:
        self.sock.send_multipart(list(parts))

    def replies(self, want: set[int], timeout_ms: int = REPLY_TIMEOUT_MS) -> dict:
        """Envelopes answering request ids ``want`` (stops when all arrived or time is up)."""
        got: dict = {}
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        budget = timeout_ms
        while want - got.keys() and budget > 0:
            if not poller.poll(min(budget, 500)):
                budget -= 500
                continue
            (frame,) = self.sock.recv_multipart()
            for env in decode(frame):
                got[env.request_id] = env
        return got

    def call(self, msg: wire.Message):
        rid = next(_RIDS)
        self.send(self.frame(REQUEST, rid, msg.TYPE, msg.to_body()))
        env = self.replies({rid}).get(rid)
        assert env is not None, f"no answer to a valid {msg.TYPE}"
        return env

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = ringkv.Node(tmp_path_factory.mktemp("fuzz") / "node", listen="tcp://127.0.0.1:0", vnodes=8)
    n.start()
    try:
        client = n.client(timeout=5.0)
        client.keyspace_create(KEYSPACE, n=1, r=1, w=1)
        ks = client.keyspace(KEYSPACE)
        for i, key in enumerate(KEYS):
            ks.put(key, b"value-%d" % i)
        ks.delete(KEYS[-1])  # a tombstone must survive too
        feed = ks.feed(FEED)
        for i in range(3):
            feed.append(b"entry-%d" % i)
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="module")
def raw(node):
    r = Raw(node.address)
    yield r
    r.close()


@pytest.fixture(scope="module")
def stored(node, raw):
    """Every stored record, as the node's replica holds it, before the fuzzing."""
    return _snapshot(raw)


def _snapshot(raw: Raw) -> dict:
    out = {}
    for key in KEYS:
        env = raw.call(LocalGet(KEYSPACE, key))
        assert env.kind == REPLY
        out[key] = env.message().record
    env = raw.call(FeedReplicaScan(KEYSPACE, FEED, None, False, 100))
    assert env.kind == REPLY
    out[FEED] = env.message().entries
    return out


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_valid_envelopes_with_invalid_bodies_get_an_answer(raw, stored, data):
    batch = data.draw(st.lists(st.tuples(st.sampled_from(TYPES), st.booleans()), min_size=1, max_size=4))
    frames, want = [], set()
    for type_name, oneway in batch:
        body = data.draw(bodies(wire.registry()[type_name]))
        rid = 0 if oneway else next(_RIDS)
        frames.append(raw.frame(ONEWAY if oneway else REQUEST, rid, type_name, body))
        if rid:
            want.add(rid)
    for f in frames:
        raw.send(f)
    got = raw.replies(want)
    assert want <= got.keys(), f"requests {sorted(want - got.keys())} of {batch} got no answer"
    assert all(env.kind in (REPLY, ERROR) for env in got.values())


@FUZZ
@given(frame=raw_frames(), extra=st.lists(st.binary(max_size=32), max_size=2))
def test_raw_random_frames(raw, stored, frame, extra):
    raw.send(frame, *extra)
    # a request id readable in a refused frame is answered with an error; nothing else comes back
    raw.replies(set(), timeout_ms=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_undecodable_bodies_of_every_type_are_typed_errors(raw, stored, data):
    type_name = data.draw(st.sampled_from(TYPES))
    body = data.draw(st.one_of(st.just([]), wire_junk.map(lambda j: [j] * 40), st.integers(min_value=0, max_value=1 << 63)))
    rid = next(_RIDS)
    raw.send(raw.frame(REQUEST, rid, type_name, body))
    env = raw.replies({rid}).get(rid)
    assert env is not None and env.kind in (REPLY, ERROR)
    if env.kind == ERROR:
        assert isinstance(env.exception(), ringkv.errors.RingKVError)


def test_node_serves_and_data_is_intact_after_fuzzing(node, raw, stored):
    # runs last in this module (pytest keeps file order)
    assert _snapshot(raw) == stored
    env = raw.call(KvGet(KEYSPACE, KEYS[0], None))
    assert env.kind == REPLY and env.message().values == [b"value-0"]
    client = node.client(timeout=5.0)
    ks = client.keyspace(KEYSPACE)
    assert [ks.get(k).value if ks.get(k) else None for k in KEYS] == [b"value-%d" % i for i in range(4)] + [None]
    assert [e.data for e in ks.feed(FEED).iterate()] == [b"entry-0", b"entry-1", b"entry-2"]
    ks.put(b"after-fuzzing", b"ok")
    assert ks.get(b"after-fuzzing").value == b"ok"
