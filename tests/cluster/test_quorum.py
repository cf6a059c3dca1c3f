"""Quorum reads and writes across real processes, with a node killed with ``kill -9``.

Every test uses its own keyspace (N=3 R=2 W=2 unless it says otherwise) on
the module's 3-node cluster, and leaves all three nodes running.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ringkv.errors import QuorumError
from ringkv.quorum.messages import KvGet, KvResult

DOWN = 2  # the node these tests kill
#: Client timeout for writes made while DOWN is dead. A coordinator keeps
#: sending such a write's copy to the dead node until the request's deadline,
#: so a node restarted sooner may still receive it.
SHORT = 1.0


def _let_queued_copies_expire() -> None:
    """Let the deadline of every copy still queued for the dead node pass.

    Not a wait for a condition: these copies are invisible from outside, and
    a restart must come after their fixed deadline for the node to miss them.
    """
    time.sleep(SHORT + 0.2)


def _keyspace(cluster, name: str, **kw):
    client = cluster.client(cluster.addrs[0], cluster.addrs[1])
    client.keyspace_create(name, **{"n": 3, "r": 2, "w": 2, **kw})
    return client, client.keyspace(name)


def _take_down(cluster) -> str:
    """``kill -9`` node DOWN and wait until the others report it down; its address."""
    node = cluster.kill(DOWN)
    cluster.wait_liveness(DOWN, "down", timeout=5.0)
    return node.addr


def _bring_back(cluster) -> str:
    node = cluster.restart(DOWN)
    cluster.wait_converged()
    return node.addr


def _put_all(ks, items: dict, w: int) -> None:
    """Every put, 100 in flight at a time (the a* twins of the blocking client)."""

    async def go() -> None:
        pairs = list(items.items())
        for i in range(0, len(pairs), 100):
            await asyncio.gather(*(ks.aput(k, v, w=w) for k, v in pairs[i : i + 100]))

    asyncio.run(go())


def _get_all(ks, keys, r: int) -> dict:
    """``{key: values or None}`` read at ``r``, 100 in flight at a time."""

    async def go() -> list:
        out: list = []
        for i in range(0, len(keys), 100):
            out += await asyncio.gather(*(ks.aget(k, r=r) for k in keys[i : i + 100]))
        return out

    return {k: (res.values if res is not None else None) for k, res in zip(keys, asyncio.run(go()))}


def test_writes_and_reads_keep_working_with_one_node_down(healthy):
    cluster = healthy
    _, ks = _keyspace(cluster, "q_avail")
    before = {f"before-{i}".encode(): f"v{i}".encode() for i in range(1000)}
    _put_all(ks, before, w=2)

    _take_down(cluster)
    during = {f"during-{i}".encode(): f"w{i}".encode() for i in range(1000)}
    _put_all(ks, during, w=2)
    expected = {k: [v] for k, v in {**before, **during}.items()}
    assert _get_all(ks, list(expected), r=2) == expected

    _bring_back(cluster)
    assert _get_all(ks, list(during), r=2) == {k: [v] for k, v in during.items()}


def test_writes_made_while_a_node_was_down_reach_it_after_restart(healthy):
    cluster = healthy
    _, ks = _keyspace(cluster, "q_hints")
    ks.put(b"doomed", b"old", w=3)
    addr = _take_down(cluster)
    fast = cluster.client(cluster.addrs[0], cluster.addrs[1], timeout=SHORT).keyspace("q_hints")
    written = {f"h-{i}".encode(): f"v{i}".encode() for i in range(200)}
    for k, v in written.items():
        fast.put(k, v, w=2)
    fast.delete(b"doomed", w=2)
    _let_queued_copies_expire()

    _bring_back(cluster)

    def delivered() -> bool:
        missing = [k for k, v in written.items() if (r := ks.get_local(k, node=addr)) is None or r.values != [v]]
        return not missing and ks.get_local(b"doomed", node=addr) is None

    cluster.wait_for(delivered, 4.0, "every write made while the node was down, on its replica")
    for addr_i in cluster.addrs:  # no read has run, so no read repair: the copies were handed over
        assert ks.get_local(b"doomed", node=addr_i) is None


def test_concurrent_writes_with_a_stale_context_become_siblings(healthy):
    cluster = healthy
    _, ks1 = _keyspace(cluster, "q_siblings")
    ks2 = cluster.client(cluster.addrs[2]).keyspace("q_siblings")

    ks1.put(b"cart", b"apples")
    stale = ks1.get(b"cart").context
    ks1.put(b"cart", b"apples,bread", stale)
    ks2.put(b"cart", b"apples,milk", stale)

    res = ks2.get(b"cart", r=3)
    assert res.siblings and sorted(res.values) == [b"apples,bread", b"apples,milk"]
    ks1.put(b"cart", b"apples,bread,milk", res.context)
    for ks in (ks1, ks2):
        assert ks.get(b"cart", r=3).values == [b"apples,bread,milk"]


def test_a_delete_never_comes_back_from_a_replica_that_missed_it(healthy):
    """Riak's kv679: the stale replica's value must not win over the tombstone."""
    cluster = healthy
    _, ks = _keyspace(cluster, "q_delete")
    keys = [f"gone-{i}".encode() for i in range(20)]
    for k in keys:
        ks.put(k, b"old", w=3)

    addr = _take_down(cluster)
    fast = cluster.client(cluster.addrs[0], cluster.addrs[1], timeout=SHORT).keyspace("q_delete")
    for k in keys:
        fast.delete(k, w=2)
    _let_queued_copies_expire()
    hinted = any(cluster.status(i)["hints_pending"] for i in (0, 1))
    _bring_back(cluster)
    if not hinted:  # then nothing can have brought the tombstones: the replica is stale
        assert all(ks.get_local(k, node=addr) is not None for k in keys), "the restarted replica should still hold the old values"

    for k in keys:  # R=3 reads the stale copy too, and repairs it with the tombstone
        assert ks.get(k, r=3) is None
    cluster.wait_for(
        lambda: all(ks.get_local(k, node=a) is None for k in keys for a in cluster.addrs),
        5.0,
        "read repair to put the tombstones on every replica",
    )
    # R=1 coordinated by each node in turn: its own copy alone answers.
    replies = cluster.requests([(a, KvGet("q_delete", k, 1)) for a in cluster.addrs for k in keys])
    assert all(isinstance(r, KvResult) and r.values == [] for r in replies), replies
    assert all(ks.get(k, r=2) is None for k in keys)


def test_w3_with_a_node_down_fails_with_acks_but_keeps_what_was_written(healthy):
    cluster = healthy
    _, ks = _keyspace(cluster, "q_w3")
    _take_down(cluster)
    quick = cluster.client(cluster.addrs[0], cluster.addrs[1], timeout=2.0).keyspace("q_w3")
    with pytest.raises(QuorumError) as err:
        quick.put(b"k", b"v", w=3)
    assert err.value.acks == 2 and err.value.required == 3
    res = ks.get(b"k", r=2)
    assert res is not None and res.value == b"v"
