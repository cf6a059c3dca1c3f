"""``ringkv.Node``: a full cluster peer inside your process.

From sync code, :meth:`Node.start` runs the node's event loop in a
background thread; inside an application's own loop, ``await node.astart()``
runs it there. Either way :meth:`Node.client` gives a client that talks to the
cluster through this node.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Iterable, Optional

from ringkv.client import AsyncClient, Client, _Runner
from ringkv.config import StoreOptions
from ringkv.errors import BadRequest, ClosedError, WrongType
from ringkv.gossip import GossipConfig
from ringkv.ring.streaming import StreamConfig
from ringkv.server import NodeConfig, NodeServer

__all__ = ["Node"]


class Node:
    """A ringkv cluster member (storage, gossip, quorum coordinator, listener)."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        listen: str = "tcp://127.0.0.1:7100",
        seeds: Iterable[str] = (),
        node_id: Optional[str] = None,
        vnodes: int = 128,
        *,
        gossip: Optional[GossipConfig] = None,
        **options: Any,
    ) -> None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise WrongType(f"data_dir must be a path, not {type(data_dir).__name__}")
        if isinstance(seeds, str):
            seeds = [seeds]
        node_keys = {"join_wait", "hint_interval", "request_timeout", "max_message_size", "replace", "cleanup_interval", "repair"}
        node_opts = {k: options.pop(k) for k in list(options) if k in node_keys}
        if "stream_mb_per_s" in options:
            node_opts["stream"] = StreamConfig(mb_per_s=options.pop("stream_mb_per_s"))
        self.config = NodeConfig(
            data_dir=os.fspath(data_dir),
            listen=listen,
            seeds=tuple(seeds),
            node_id=node_id,
            vnodes=vnodes,
            store=StoreOptions.from_kwargs(**options),
            gossip=gossip or GossipConfig(),
            **node_opts,
        )
        self._server: Optional[NodeServer] = None
        self._runner: Optional[_Runner] = None
        self._clients: list[Client] = []

    # -- lifecycle -------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "Node":
        """Start in a background thread; returns when the node serves requests."""
        if self._server is not None:
            raise BadRequest("node already started")
        runner = _Runner()
        server = NodeServer(self.config)
        try:
            asyncio.run_coroutine_threadsafe(server.start(), runner.loop).result(timeout)
        except BaseException:
            runner.close()
            raise
        self._runner, self._server = runner, server
        return self

    def stop(self) -> None:
        if self._server is None or self._runner is None:
            return
        for c in self._clients:
            c.close()
        self._clients.clear()
        asyncio.run_coroutine_threadsafe(self._server.stop(), self._runner.loop).result(30)
        self._runner.close()
        self._server = self._runner = None

    async def astart(self) -> "Node":
        """Start on the running event loop."""
        if self._server is not None:
            raise BadRequest("node already started")
        server = NodeServer(self.config)
        await server.start()
        self._server = server
        self._runner = _Runner(asyncio.get_running_loop())
        return self

    async def astop(self) -> None:
        if self._server is None:
            return
        for c in self._clients:
            await c._core.aclose()
        self._clients.clear()
        await self._server.stop()
        self._server = self._runner = None

    def __enter__(self) -> "Node":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> "Node":
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # -- introspection ---------------------------------------------------

    @property
    def server(self) -> NodeServer:
        if self._server is None:
            raise ClosedError("node is not running")
        return self._server

    @property
    def node_id(self) -> str:
        return self.server.node_id

    @property
    def address(self) -> str:
        """The address this node listens on (a port-0 listen resolved)."""
        return self.server.address

    def status(self) -> dict:
        runner = self._runner
        if runner is None:
            raise ClosedError("node is not running")
        return runner.run(self.server.status())

    async def astatus(self) -> dict:
        return await self.server.status()

    def client(self, timeout: float = 5.0) -> Client:
        """A client of the cluster that uses this node's own transport and loop."""
        server, runner = self.server, self._runner
        assert runner is not None
        if _in_loop(runner.loop):
            raise BadRequest("inside the node's event loop use: client = await node.aclient()")
        core = AsyncClient([server.address], timeout=timeout, transport=server.transport)
        runner.run(core.start())
        client = Client(core, _Runner(runner.loop))
        self._clients.append(client)
        return client

    async def aclient(self, timeout: float = 5.0) -> AsyncClient:
        """An async client bound to this node's loop (use from that loop)."""
        core = AsyncClient([self.server.address], timeout=timeout, transport=self.server.transport)
        return await core.start()


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
