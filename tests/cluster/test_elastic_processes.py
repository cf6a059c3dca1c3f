"""Growing and shrinking real ``ringkv serve`` processes under client load."""

from __future__ import annotations

import random
import threading
import time

import ringkv
from ringkv.errors import RingKVError


class Load(threading.Thread):
    """A bounded W=2 R=2 read/write load through one client; every result recorded."""

    def __init__(self, client: ringkv.Client, keyspace: str) -> None:
        super().__init__(daemon=True)
        self.ks = client.keyspace(keyspace)
        self.acked: dict[bytes, bytes] = {}
        self.failures: list = []
        self.ops = 0
        self.stop = threading.Event()
        self.rng = random.Random(7)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set() and self.ops < 20_000:
            n += 1
            key = b"k%d" % self.rng.randrange(300)
            try:
                if self.rng.random() < 0.5:
                    value = b"v%d" % n
                    self.ks.put(key, value, w=2)
                    self.acked[key] = value
                else:
                    res = self.ks.get(key, r=2)
                    if key in self.acked and (res is None or self.acked[key] not in res.values):
                        self.failures.append(("stale", key))
            except RingKVError as exc:
                self.failures.append((type(exc).__name__, str(exc)))
            self.ops += 1


def _copies(client: ringkv.Client, addrs: list[str], keyspace: str, key: bytes) -> int:
    ks = client.keyspace(keyspace)
    return sum(ks.get_local(key, node=a) is not None for a in addrs)


def _settled(cluster, running: list[int]) -> bool:
    for i in running:
        st = cluster.status(i)
        live = [m for m in st["members"] if m["status"] not in ("left", "removed")]
        if len(live) != len(running) or any(m["status"] != "up" or m["liveness"] != "alive" for m in live):
            return False
        if st["elastic"]["state"] != "idle" or st["hints_pending"]:
            return False
    return True


def test_grow_3_to_5_then_shrink_with_leave_loses_nothing(cluster_factory):
    cluster = cluster_factory(3, vnodes=32)
    wait_for = cluster.wait_for
    if True:
        client = cluster.client()
        client.keyspace_create("grow", n=3, r=2, w=2)
        load = Load(client, "grow")
        load.start()
        try:
            for _ in range(2):  # one at a time, through a running seed
                node = cluster.add()
                wait_for(lambda: _settled(cluster, list(range(len(cluster.nodes)))), 60, f"{node.name} joined")
            grown = {m["node_id"]: m["ownership"] for m in cluster.status(0)["members"]}
            for i in (3, 4):
                result = cluster.cli("leave", "--connect", cluster.nodes[i].addr, "--no-wait")
                assert result.returncode == 0, result.stderr
                wait_for(lambda i=i: cluster.nodes[i].proc.poll() is not None, 60, f"{cluster.nodes[i].name} left and stopped")
            wait_for(lambda: _settled(cluster, [0, 1, 2]), 60, "three members left, all idle")
            # old owners hand off and drop the ranges they lost
            addrs = [cluster.nodes[i].addr for i in range(3)]
        finally:
            load.stop.set()
            load.join(30)
        assert load.ops > 200
        assert load.failures == []
        for key, value in load.acked.items():
            res = client.keyspace("grow").get(key)
            assert res is not None and value in res.values
        counts = [_copies(client, addrs, "grow", k) for k in list(load.acked)[:100]]
        assert set(counts) == {3}
        assert max(grown.values()) / min(grown.values()) <= 1.25


def test_kill_and_remove_restores_n_copies(cluster_factory):
    cluster = cluster_factory(4, vnodes=32)
    wait_for = cluster.wait_for
    if True:
        client = cluster.client()
        client.keyspace_create("rm", n=3, r=2, w=2)
        keys = [b"key%d" % i for i in range(200)]
        for k in keys:
            client.keyspace("rm").put(k, k, w=3)
        dead = cluster.nodes[3]
        cluster.kill(3)
        cluster.wait_liveness(3, "down", timeout=10)
        result = cluster.cli("remove", dead.node_id, "--connect", cluster.nodes[0].addr, "--no-wait")
        assert result.returncode == 0, result.stderr
        survivors = [cluster.nodes[i].addr for i in range(3)]
        begun = time.monotonic()
        wait_for(lambda: all(_copies(client, survivors, "rm", k) == 3 for k in keys), 60, "every key back on N=3 nodes")
        assert time.monotonic() - begun < 60
