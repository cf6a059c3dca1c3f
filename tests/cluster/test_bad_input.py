"""Bad input sent to a live node: a typed error comes back, and the node keeps serving.

Requests go out two ways: through the client (whose own checks come
first), and as raw wire messages that skip every client-side check.
"""

from __future__ import annotations

import pytest

from ringkv.errors import (
    AlreadyExists,
    BadRequest,
    CorruptRecord,
    KeyspaceNotFound,
    NotFound,
    ProtocolError,
    TooLarge,
    WrongType,
)
from ringkv.node_messages import RemoveMember
from ringkv.quorum.messages import KeyspaceCreate, KeyspaceDrop, KvGet, KvPut, LocalGet, ReplicaPut

KS = "bad_input"
MAX_KEY = 64 * 1024
MAX_VALUE = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def ks(cluster):
    client = cluster.client()
    client.keyspace_create(KS, n=3, r=2, w=2)
    return client.keyspace(KS)


def _put(key=b"k", value=b"v", keyspace=KS, context=None, w=None, timestamp=None, request_id="r1") -> KvPut:
    return KvPut(keyspace, key, value, context, w, timestamp, request_id)


# (raw wire request, the error it must come back as)
WIRE_CASES = {
    "key of the wrong type": (_put(key=123), ProtocolError),
    "value of the wrong type": (_put(value="text"), ProtocolError),
    "r of the wrong type": (KvGet(KS, b"k", "2"), ProtocolError),
    "r as a bool": (KvGet(KS, b"k", True), ProtocolError),
    "key over the limit": (_put(key=b"k" * (MAX_KEY + 1)), TooLarge),
    "value over the limit": (_put(value=b"v" * (MAX_VALUE + 1)), TooLarge),
    "get of a key over the limit": (KvGet(KS, b"k" * (MAX_KEY + 1), None), TooLarge),
    "unknown keyspace (put)": (_put(keyspace="nope"), KeyspaceNotFound),
    "unknown keyspace (get)": (KvGet("nope", b"k", None), KeyspaceNotFound),
    "unknown keyspace (local read)": (LocalGet("nope", b"k"), KeyspaceNotFound),
    "bad keyspace name": (KvGet("no/such name", b"k", None), BadRequest),
    "r > n": (KvGet(KS, b"k", 4), BadRequest),
    "r = 0": (KvGet(KS, b"k", 0), BadRequest),
    "w > n": (_put(w=4), BadRequest),
    "negative w": (_put(w=-1), BadRequest),
    "a context that is not one": (_put(context=b"\xff garbage"), BadRequest),
    "timestamp outside an lww keyspace": (_put(timestamp=1), BadRequest),
    "keyspace with r > n": (KeyspaceCreate("ks_r_gt_n", 2, 3, 1, "siblings"), BadRequest),
    "keyspace with n = 0": (KeyspaceCreate("ks_n0", 0, 1, 1, "siblings"), BadRequest),
    "keyspace with a huge n": (KeyspaceCreate("ks_huge", 1000, 1, 1, "siblings"), BadRequest),
    "keyspace with an unknown conflict mode": (KeyspaceCreate("ks_mode", 3, 2, 2, "newest"), BadRequest),
    "keyspace that exists": (KeyspaceCreate(KS, 3, 2, 2, "siblings"), AlreadyExists),
    "drop of an unknown keyspace": (KeyspaceDrop("nope"), KeyspaceNotFound),
    "drop of the default keyspace": (KeyspaceDrop("default"), BadRequest),
    "replica record that is not one": (ReplicaPut(KS, b"k", b"\x01\xc1garbage", None), CorruptRecord),
    "remove of an unknown member": (RemoveMember("nobody"), NotFound),
}


def test_raw_wire_requests_get_typed_errors_and_the_node_stays_up(cluster, ks):
    target = cluster.addrs[0]
    names = list(WIRE_CASES)
    replies = cluster.requests([(target, WIRE_CASES[n][0]) for n in names], timeout=10.0)
    wrong = {n: repr(r)[:200] for n, r in zip(names, replies) if type(r) is not WIRE_CASES[n][1]}
    assert not wrong, wrong

    ks.put(b"after", b"still here")
    for addr in cluster.addrs:
        assert cluster.status(cluster.addrs.index(addr))["node_id"]
    assert ks.get(b"after", r=3).value == b"still here"


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda ks: ks.put(123, b"v"), WrongType),
        (lambda ks: ks.put(b"k", 4.5), WrongType),
        (lambda ks: ks.get(b"k", r="2"), WrongType),
        (lambda ks: ks.put(b"k", b"v", w=True), WrongType),
        (lambda ks: ks.put(b"k", b"v", context="ctx"), WrongType),
        (lambda ks: ks.put(b"k" * (MAX_KEY + 1), b"v"), TooLarge),
        (lambda ks: ks.put(b"k", b"v" * (MAX_VALUE + 1)), TooLarge),
        (lambda ks: ks.get(b"k", r=4), BadRequest),
        (lambda ks: ks.put(b"k", b"v", w=0), BadRequest),
        (lambda ks: ks.put(b"k", b"v", context=b"not a context"), BadRequest),
    ],
    ids=["int key", "float value", "str r", "bool w", "str context", "big key", "big value", "r > n", "w = 0", "bad context"],
)
def test_client_calls_with_bad_input_raise_typed_errors(ks, call, error):
    with pytest.raises(error):
        call(ks)
    assert ks.get(b"k") is None  # nothing was written, and the node answers


def test_client_keyspace_errors(cluster, ks):
    client = cluster.client()
    with pytest.raises(KeyspaceNotFound):
        client.keyspace("nope").get(b"k")
    with pytest.raises(KeyspaceNotFound):
        client.keyspace_drop("nope")
    with pytest.raises(BadRequest):
        client.keyspace_create("bad_nrw", n=2, r=3, w=1)
    with pytest.raises(BadRequest):
        client.keyspace("bad name!")
    with pytest.raises(AlreadyExists):
        client.keyspace_create(KS, n=3, r=2, w=2)
    assert KS in {k.name for k in client.keyspaces()}
    assert "bad_nrw" not in {k.name for k in client.keyspaces()}
