"""Growing, shrinking and healing a cluster under load (simulated, seeded, virtual time)."""

from __future__ import annotations

import asyncio
import random
import shutil

from ringkv.errors import BadRequest, RingKVError
from ringkv.node_messages import Leave, RemoveMember
from ringkv.quorum.messages import LocalGet
from ringkv.ring.streaming import StreamConfig
from ringkv.simcluster import SimCluster
from ringkv.simloop import run_virtual


class Load:
    """A bounded client load (W=2 R=2 reads and writes); every result recorded."""

    def __init__(self, client, rng: random.Random) -> None:
        self.client, self.rng = client, rng
        self.acked: dict[bytes, bytes] = {}
        self.failures: list = []
        self.ops = 0
        self.running = True

    async def run(self) -> None:
        n = 0
        ks = self.client.keyspace("data")
        while self.running:
            n += 1
            key = b"k%d" % self.rng.randrange(400)
            try:
                if self.rng.random() < 0.5:
                    value = b"v%d" % n
                    await ks.aput(key, value, w=2)
                    self.acked[key] = value
                else:
                    res = await ks.aget(key, r=2)
                    if key in self.acked and (res is None or self.acked[key] not in res.values):
                        self.failures.append(("stale read", key))
            except RingKVError as exc:
                self.failures.append((type(exc).__name__, str(exc), round(asyncio.get_running_loop().time(), 2), key))
            self.ops += 1
            await asyncio.sleep(0.005)


async def copies(cluster: SimCluster, client, key: bytes) -> int:
    n = 0
    for i in cluster.running():
        reply = await client.call(LocalGet("data", key), addr=cluster.configs[i].listen)
        n += reply.record is not None
    return n


def _all_up(cluster: SimCluster, count: int) -> bool:
    views = [s.gossip.members for s in cluster.servers if s is not None]
    return all(sum(m.status == "up" for m in v.values()) == count for v in views) and all(
        s.elastic.stable() for s in cluster.servers if s is not None
    )


def test_grow_3_to_5_then_shrink_with_leave_under_load(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=11, vnodes=32).start()
        try:
            client = await cluster.client(0, timeout=5.0)
            await client.akeyspace_create("data", n=3, r=2, w=2)
            load = Load(client, random.Random(1))
            task = asyncio.ensure_future(load.run())
            await cluster.run_for(2)
            for _ in range(2):
                await cluster.add()
            await cluster.wait_for(lambda: _all_up(cluster, 5))
            await cluster.run_for(3)  # cleanup hands off and drops lost ranges
            grown = cluster.servers[0].ring.ownership()
            for i in (3, 4):
                await client.call(Leave(), addr=cluster.configs[i].listen)
            await cluster.wait_for(lambda: all(cluster.servers[i].elastic.state == "left" for i in (3, 4)))
            for i in (3, 4):
                await cluster.servers[i].wait_stopped()
                await cluster.crash(i)
            # a node that left never serves from its old data directory again (its tokens are others' now)
            try:
                await cluster.restart(3)
                refused = None
            except BadRequest as exc:
                refused = str(exc)
            await cluster.wait_for(lambda: _all_up(cluster, 3))
            await cluster.run_for(3)
            load.running = False
            await task
            missing = [k for k, v in load.acked.items() if (r := await client.keyspace("data").aget(k)) is None or v not in r.values]
            counts = {k: await copies(cluster, client, k) for k in list(load.acked)[:100]}
            return load, grown, missing, counts, refused
        finally:
            await cluster.stop()

    load, grown, missing, counts, refused = run_virtual(main())
    assert refused is not None and "left the cluster" in refused
    assert load.ops > 500
    assert load.failures == []
    assert missing == []
    assert set(counts.values()) == {3}, counts
    assert max(grown.values()) / min(grown.values()) <= 1.25


def test_remove_dead_node_restores_n_copies_and_replace_takes_its_ranges(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 5, seed=5, vnodes=32).start()
        try:
            client = await cluster.client(0, timeout=5.0)
            await cluster.wait_for(lambda: _all_up(cluster, 5))
            await client.akeyspace_create("data", n=3, r=2, w=2)
            keys = [b"key%d" % i for i in range(300)]
            for k in keys:
                await client.keyspace("data").aput(k, k)
            # kill one for good, remove it: every key back to N copies on the survivors
            dead = cluster.servers[4].node_id
            await cluster.crash(4)
            await cluster.wait_for(lambda: cluster.servers[0].gossip.liveness(dead) == "down")
            await client.call(RemoveMember(dead), addr=cluster.configs[0].listen)
            await cluster.wait_for(lambda: all(s.elastic.stable() for s in cluster.servers if s is not None))
            await cluster.run_for(3)
            after_remove = [await copies(cluster, client, k) for k in keys]
            # kill another, replace it with a new node that takes its tokens
            victim = cluster.servers[3]
            victim_id, victim_tokens = victim.node_id, victim.gossip.self_member.tokens
            await cluster.crash(3)
            await cluster.wait_for(lambda: cluster.servers[0].gossip.liveness(victim_id) == "down")
            j = await cluster.add(replace=victim_id)
            await cluster.wait_for(lambda: _all_up(cluster, 4))
            await cluster.run_for(3)
            newcomer = cluster.servers[j]
            held = 0
            for k in keys:
                if newcomer.node_id in newcomer.ring.preference_list(k, 3):
                    reply = await client.call(LocalGet("data", k), addr=cluster.configs[j].listen)
                    held += reply.record is None
            return after_remove, victim_tokens, newcomer.gossip.self_member.tokens, held
        finally:
            await cluster.stop()

    after_remove, victim_tokens, new_tokens, missing_on_new = run_virtual(main())
    assert set(after_remove) == {3}
    assert tuple(new_tokens) == tuple(victim_tokens)
    assert missing_on_new == 0


def test_interrupted_stream_resumes_instead_of_restarting(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=3, vnodes=16, stream=StreamConfig(mb_per_s=0.05, chunk_bytes=4096)).start()
        try:
            client = await cluster.client(0, timeout=5.0)
            await cluster.wait_for(lambda: _all_up(cluster, 3))
            await client.akeyspace_create("data", n=3, r=2, w=2)
            for i in range(1500):
                await client.keyspace("data").aput(b"key%d" % i, b"x" * 100)
            j = await cluster.add()
            joiner = cluster.servers[j]
            await cluster.wait_for(lambda: sum(t.bytes for t in joiner.elastic.streamer.transfers.values()) > 60_000)
            before_crash = sum(t.bytes for t in joiner.elastic.streamer.transfers.values())
            await cluster.crash(j)
            await cluster.restart(j)
            joiner = cluster.servers[j]
            await cluster.wait_for(lambda: _all_up(cluster, 4), timeout=600)
            transfers = joiner.elastic.streamer.transfers.values()
            resumed = sum(t.resumed_from for t in transfers)
            total_after = sum(t.bytes for t in transfers)
            present = sum([(await client.call(LocalGet("data", b"key%d" % i), addr=cluster.configs[j].listen)).record is not None for i in range(1500) if joiner.node_id in joiner.ring.preference_list(b"key%d" % i, 3)])
            owned = sum(joiner.node_id in joiner.ring.preference_list(b"key%d" % i, 3) for i in range(1500))
            return before_crash, resumed, total_after, present, owned
        finally:
            await cluster.stop()

    before_crash, resumed, total_after, present, owned = run_virtual(main())
    assert resumed > 0, "the restarted join started from zero"
    assert resumed <= before_crash
    new_bytes = total_after - resumed
    assert new_bytes < total_after  # what was streamed before the crash was not sent again
    assert present == owned


def test_wiped_node_rejoins_with_its_tokens(tmp_path):
    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=9).start()
        try:
            await cluster.wait_for(lambda: _all_up(cluster, 3))
            node = cluster.servers[2]
            node_id, tokens = node.node_id, node.gossip.self_member.tokens
            await cluster.crash(2)
            shutil.rmtree(cluster.configs[2].data_dir)
            from dataclasses import replace

            cluster.configs[2] = replace(cluster.configs[2], node_id=node_id)
            await cluster.restart(2)
            await cluster.wait_for(lambda: _all_up(cluster, 3))
            return tokens, cluster.servers[2].gossip.self_member.tokens
        finally:
            await cluster.stop()

    before, after = run_virtual(main())
    assert tuple(before) == tuple(after)


def test_a_joining_owner_that_refuses_a_write_gets_it_by_hint_and_the_write_succeeds(tmp_path):
    from ringkv.errors import Unavailable

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=9, vnodes=16, stream=StreamConfig(mb_per_s=0.02, chunk_bytes=4096)).start()
        try:
            client = await cluster.client(0, timeout=5.0)
            await cluster.wait_for(lambda: _all_up(cluster, 3))
            await client.akeyspace_create("data", n=3, r=2, w=2)
            for i in range(300):
                await client.keyspace("data").aput(b"old%d" % i, b"x" * 200)
            j = await cluster.add()
            joiner = cluster.servers[j]
            # streaming is slow: the joiner stays a pending owner; it refuses writes meanwhile
            await cluster.wait_for(lambda: any(s.future_ring is not s.ring and joiner.node_id in s.future_ring for s in cluster.servers[:3]))

            def refuse(*_a, **_k):
                raise Unavailable("busy")

            joiner.coordinator.on_replica_put = refuse
            joiner.coordinator.on_replica_put_many = refuse
            keys = [b"new%d" % i for i in range(300)]
            future = [k for k in keys if joiner.node_id in cluster.servers[0].future_ring.preference_list(k, 3)
                      and joiner.node_id not in cluster.servers[0].ring.preference_list(k, 3)]
            for k in future:
                await client.keyspace("data").aput(k, b"v", w=3)  # must not fail for the joiner's sake
            hinted = sum(s.coordinator.stats["hinted_writes"] for s in cluster.servers[:3])
            del joiner.coordinator.on_replica_put, joiner.coordinator.on_replica_put_many
            await cluster.wait_for(lambda: _all_up(cluster, 4), timeout=900)
            await cluster.run_for(5)  # hint delivery
            have = [(await client.call(LocalGet("data", k), addr=cluster.configs[j].listen)).record is not None for k in future]
            return len(future), hinted, have
        finally:
            await cluster.stop()

    n, hinted, have = run_virtual(main())
    assert n > 0
    assert hinted > 0
    assert all(have), "the joiner lacks writes made while it refused them"


def test_writes_to_a_cluster_still_forming_succeed_and_reach_every_member(tmp_path):
    """One member up, two still joining: a W=2 write counts the joiners' acks (and needs them all)."""

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=12).start()
        try:
            forming = [sum(m.status == "joining" for m in s.gossip.members.values()) for s in cluster.servers]
            client = await cluster.client(0)
            await client.keyspace("default").aput(b"early", b"v", w=2)
            await cluster.wait_for(lambda: _all_up(cluster, 3))
            copies = 0
            for i in range(3):
                reply = await client.call(LocalGet("default", b"early"), addr=cluster.configs[i].listen)
                copies += reply.record is not None
            return forming, copies
        finally:
            await cluster.stop()

    forming, copies = run_virtual(main())
    assert any(forming), "the test's premise: members were still joining"
    assert copies == 3


def test_joining_owners_that_refuse_never_bring_a_write_below_w_acks(tmp_path):
    """One member up, two joining and refusing writes: a W=2 write cannot be acknowledged."""
    from ringkv.errors import QuorumError, Unavailable

    async def main():
        cluster = await SimCluster(str(tmp_path), 3, seed=12).start()
        try:
            forming = [sum(m.status == "joining" for m in s.gossip.members.values()) for s in cluster.servers]

            def refuse(*_a, **_k):
                raise Unavailable("busy")

            for s in cluster.servers[1:]:
                s.coordinator.on_replica_put = refuse
                s.coordinator.on_replica_put_many = refuse
            client = await cluster.client(0)
            try:
                await client.keyspace("default").aput(b"early", b"v", w=2)
                outcome = "acknowledged"
            except QuorumError as exc:
                outcome = f"refused: {exc.acks} acks"
            return forming, outcome
        finally:
            await cluster.stop()

    forming, outcome = run_virtual(main())
    assert any(forming)
    assert outcome.startswith("refused"), "acknowledged with a single copy"
