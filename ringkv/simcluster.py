"""A cluster of real node shells on one virtual loop, for seeded fault simulations.

Each member is a full :class:`~ringkv.server.NodeServer` (RocksDB in a temp
directory, gossip, coordinator, hints) talking over a
:class:`~ringkv.simloop.SimNetwork`. Crashes stop a node without a clean
shutdown and keep its directory; restarts bring it back on the same address.
Run everything inside :func:`ringkv.simloop.run_virtual`.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import replace
from typing import Optional

from ringkv.client import AsyncClient
from ringkv.gossip import GossipConfig
from ringkv.server import NodeConfig, NodeServer
from ringkv.simloop import SimNetwork

__all__ = ["SimCluster"]


class SimCluster:
    """``n`` simulated nodes ``sim://n0 .. sim://n{n-1}`` with fault controls."""

    def __init__(self, root: str, n: int = 5, *, seed: int = 0, vnodes: int = 16, drop: float = 0.0, gossip: Optional[GossipConfig] = None, **node_options) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.net = SimNetwork(random.Random(seed + 1), drop=drop)
        self.seed = seed
        self._template = dict(vnodes=vnodes, gossip=gossip or GossipConfig(), hint_interval=0.5, cleanup_interval=1.0)
        self._template.update(node_options)
        self.configs: list[NodeConfig] = []
        self.servers: list[Optional[NodeServer]] = []
        for _ in range(n):
            self._new_config()
        self._clients: list[AsyncClient] = []

    def _new_config(self, **overrides) -> int:
        i = len(self.configs)
        opts = dict(self._template, **overrides)
        self.configs.append(
            NodeConfig(
                data_dir=os.path.join(self.root, f"n{i}"),
                listen=f"sim://n{i}",
                seeds=("sim://n0",) if i else (),
                seed=self.seed * 1000 + i,
                node_id=opts.pop("node_id", f"{self.seed * 1000 + i:012x}"),
                **opts,
            )
        )
        self.servers.append(None)
        return i

    async def add(self, **overrides) -> int:
        """Start one more node (joining through the running ones); returns its index."""
        i = self._new_config(**overrides)
        await self.restart(i)
        return i

    async def wait_for(self, predicate, timeout: float = 120.0, step: float = 0.25) -> None:
        """Advance simulated time until ``predicate()`` holds (AssertionError after ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"condition not met within {timeout}s of simulated time")
            await asyncio.sleep(step)

    async def wait_all_up(self, timeout: float = 120.0) -> None:
        """Advance simulated time until every running node sees every running node ``up``."""
        def all_up() -> bool:
            running = [s for s in self.servers if s is not None]
            return all(sum(m.status == "up" for m in s.gossip.members.values()) == len(running) for s in running)

        await self.wait_for(all_up, timeout)

    @property
    def addrs(self) -> list[str]:
        return [c.listen for c in self.configs]

    def running(self) -> list[int]:
        return [i for i, s in enumerate(self.servers) if s is not None]

    async def start(self) -> "SimCluster":
        for i in range(len(self.configs)):
            await self.restart(i)
        return self

    async def restart(self, i: int) -> NodeServer:
        if self.servers[i] is not None:
            return self.servers[i]  # type: ignore[return-value]
        cfg = self.configs[i]
        # a restart can meet a partition that hides every seed: seed from all peers
        others = tuple(a for j, a in enumerate(self.addrs) if a != cfg.listen and self.servers[j] is not None)
        cfg = replace(cfg, seeds=others or cfg.seeds)
        server = NodeServer(cfg, transport_factory=self.net.transport)
        await server.start()
        self.servers[i] = server
        return server

    async def crash(self, i: int) -> None:
        """Stop node ``i`` abruptly (no clean-shutdown mark); its data stays."""
        server, self.servers[i] = self.servers[i], None
        if server is not None:
            await server.stop(clean=False)

    def partition(self, *groups: list[int]) -> None:
        self.net.partition(*({self.configs[i].listen for i in g} for g in groups))

    def heal(self) -> None:
        self.net.heal()
        self.net.drop = 0.0

    async def client(self, i: int, timeout: float = 2.0) -> AsyncClient:
        """A client whose first contact is node ``i`` (it routes token-aware after that)."""
        t = self.net.transport(None, None)
        await t.start()
        c = AsyncClient([self.configs[i].listen], timeout=timeout, transport=t)
        await c.start()
        self._clients.append(c)
        return c

    async def run_for(self, seconds: float) -> None:
        """Let simulated time pass (gossip, hints, repairs run meanwhile)."""
        await asyncio.sleep(seconds)

    async def stop(self) -> None:
        for c in self._clients:
            await c.aclose()
            await c._transport.stop()  # type: ignore[union-attr]
        for i in range(len(self.servers)):
            server, self.servers[i] = self.servers[i], None
            if server is not None:
                await server.stop()
