"""A coordinator whose replica stops answering settles at its deadline, in the simulator.

Right after a partition no failure detector has noticed anything yet: the
cut-off replica is still "alive", so the coordinator asks it and hears
nothing. A read or write that needs it must come back as a QuorumError that
says how many replicas answered — before the client's own timeout, so the
client learns why — and one that does not need it must succeed at once.
"""

from __future__ import annotations

import asyncio

from ringkv.errors import QuorumError
from ringkv.quorum.messages import KvDone, KvGet, KvPut, KvResult, LocalGet
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual


def test_reads_and_writes_that_need_a_silent_replica_fail_at_the_deadline_with_their_acks(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=11).start()
        try:
            client = await cluster.client(0, timeout=2.0)
            await cluster.wait_all_up()
            await client.akeyspace_create("data", n=3, r=2, w=2)
            await client.keyspace("data").aput(b"k", b"v1")
            coord, silent = cluster.configs[0].listen, cluster.configs[2].listen
            cluster.net.partition({coord, client._transport.address}, {silent})  # the third node hears nobody
            loop = asyncio.get_running_loop()
            outcomes = {}
            start = loop.time()
            try:
                await client.call(KvGet("data", b"k", 3), addr=coord)
            except QuorumError as exc:
                outcomes["get r=3"] = (exc.acks, exc.required, loop.time() - start)
            start = loop.time()
            try:
                await client.call(KvPut("data", b"k", b"v2", None, 3, None, "req-w3"), addr=coord, idempotent=False)
            except QuorumError as exc:
                outcomes["put w=3"] = (exc.acks, exc.required, loop.time() - start)
            still_alive = cluster.servers[0].is_alive(cluster.servers[2].node_id)
            got = await client.call(KvGet("data", b"k", 2), addr=coord)
            done = await client.call(KvPut("data", b"k", b"v3", got.context, 2, None, "req-w2"), addr=coord, idempotent=False)
            mid = cluster.configs[1].listen
            kept = await client.call(LocalGet("data", b"k"), addr=mid)
            return outcomes, still_alive, got, done, kept
        finally:
            await cluster.stop()

    outcomes, still_alive, got, done, kept = run_virtual(main())
    assert still_alive, "the test needs the replica to be silent, not known to be down"
    assert set(outcomes) == {"get r=3", "put w=3"}, f"expected QuorumErrors, got {outcomes}"
    for what, (acks, required, took) in outcomes.items():
        assert (acks, required) == (2, 3), what
        assert took < 2.0, f"{what} answered after the client's timeout ({took:.2f}s)"
    assert isinstance(got, KvResult) and b"v2" in got.values  # the failed W=3 write was kept, not undone
    assert isinstance(done, KvDone) and done.acks == 2
    assert kept.record is not None
