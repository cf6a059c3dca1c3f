"""Whole nodes on virtual time: an asyncio loop with a simulated clock and network.

:class:`VirtualLoop` is an asyncio event loop whose clock only moves when
nothing is ready to run: it jumps straight to the next timer, so a simulated
minute of gossip and timeouts takes milliseconds and never sleeps.
:class:`SimNetwork` hands out :class:`SimTransport` objects with the real
transport's API (``request``/``send``/``start``/``stop``/``address``/``stats``)
that carry every message through the real envelope codec with seeded delays,
drops, duplicates and partitions.

Together they run the real :class:`~ringkv.server.NodeServer` — storage,
gossip, coordinator, hints — many to a process, reproducibly from a seed.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from typing import Awaitable, Callable, Iterable, Optional

from ringkv import wire
from ringkv.dispatch import TransportStats, answer_now, run_handler, set_deadline
from ringkv.envelope import ONEWAY, REPLY, REQUEST, Codec
from ringkv.errors import ClosedError, Timeout, Unavailable

__all__ = ["VirtualLoop", "SimNetwork", "SimTransport", "run_virtual"]

Handler = Callable[[bytes, wire.Message], Awaitable["wire.Message | None"]]


class _VirtualSelector(selectors.BaseSelector):
    """A selector with no real file descriptors: waiting advances the clock."""

    def __init__(self) -> None:
        self._map: dict = {}
        self.loop: Optional["VirtualLoop"] = None

    def register(self, fileobj, events, data=None):
        key = selectors.SelectorKey(fileobj, fileobj if isinstance(fileobj, int) else fileobj.fileno(), events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj):
        return self._map.pop(fileobj)

    def modify(self, fileobj, events, data=None):
        self._map.pop(fileobj, None)
        return self.register(fileobj, events, data)

    def select(self, timeout=None):
        # Every loop turn costs a microsecond of virtual time, as it would
        # cost real time: a task polling "until now >= t" always gets there.
        if self.loop is not None:
            self.loop._now += timeout if timeout else 1e-6
        return []

    def get_map(self):
        return self._map

    def close(self) -> None:
        self._map.clear()


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on simulated time (starts at 1000.0 seconds)."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 1000.0

    def time(self) -> float:
        return self._now


def run_virtual(main: Awaitable, *, timeout: float | None = None):
    """Run ``main`` to completion on a fresh :class:`VirtualLoop`."""
    loop = VirtualLoop()
    try:
        coro = asyncio.wait_for(main, timeout) if timeout else main
        return loop.run_until_complete(coro)
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


class SimNetwork:
    """Seeded network between simulated transports: delay, loss, duplication, partitions."""

    def __init__(
        self,
        rng: random.Random,
        *,
        delay: tuple[float, float] = (0.0005, 0.004),
        drop: float = 0.0,
        duplicate: float = 0.0,
    ) -> None:
        self.rng = rng
        self.delay = delay
        self.drop = drop
        self.duplicate = duplicate
        self.transports: dict[str, "SimTransport"] = {}
        self._groups: list[set[str]] = []
        self.stats = {"sent": 0, "dropped": 0, "duplicated": 0, "blocked": 0}
        self._n = 0

    def transport(self, listen: Optional[str], handler: Optional[Handler]) -> "SimTransport":
        if listen is None or listen.endswith(":0"):
            self._n += 1
            listen = f"sim://{'node' if handler else 'client'}-{self._n}"
        return SimTransport(self, listen, handler)

    # -- faults ----------------------------------------------------------

    def partition(self, *groups: Iterable[str]) -> None:
        """Only addresses in the same group can talk; addresses in no group reach everyone."""
        self._groups = [set(g) for g in groups]

    def heal(self) -> None:
        self._groups = []

    def reachable(self, src: str, dst: str) -> bool:
        if not self._groups:
            return True
        gs = next((g for g in self._groups if src in g), None)
        gd = next((g for g in self._groups if dst in g), None)
        return gs is None or gd is None or gs is gd

    def _schedule(self, src: str, dst: str, deliver: Callable[[], None]) -> None:
        self.stats["sent"] += 1
        if not self.reachable(src, dst):
            self.stats["blocked"] += 1
            return
        if self.drop and self.rng.random() < self.drop:
            self.stats["dropped"] += 1
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self.rng.uniform(*self.delay), deliver)
        if self.duplicate and self.rng.random() < self.duplicate:
            self.stats["duplicated"] += 1
            loop.call_later(self.rng.uniform(*self.delay), deliver)


class SimTransport:
    """The :class:`~ringkv.transport.Transport` API over a :class:`SimNetwork`."""

    def __init__(self, net: SimNetwork, address: str, handler: Optional[Handler]) -> None:
        self.net = net
        self.listen = address
        self.handler = handler
        self.stats = TransportStats()
        self._codec = Codec()
        self._waiting: dict[int, asyncio.Future] = {}
        self._rid = 0
        self._running = False
        self._tasks: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        return self.listen

    async def start(self) -> None:
        self.net.transports[self.listen] = self
        self._running = True

    async def stop(self) -> None:
        """Also the crash of a process: in-flight work vanishes, peers time out."""
        self._running = False
        if self.net.transports.get(self.listen) is self:
            del self.net.transports[self.listen]
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ClosedError("transport stopped"))
        self._waiting.clear()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _part(self, kind: int, rid: int, msg: wire.Message, deadline: float | None) -> bytes:
        budget = None if deadline is None else max(0, int((deadline - asyncio.get_running_loop().time()) * 1000))
        return self._codec.part(kind, rid, msg.TYPE, budget, self._codec.pack_body(msg.to_body()))

    def flush(self) -> None:
        """Nothing waits for a loop turn here: requests are scheduled when made."""

    def request_future(self, addr: str, msg: wire.Message, timeout: float) -> asyncio.Future:
        return asyncio.ensure_future(self.request(addr, msg, timeout))

    async def request(self, addr: str, msg: wire.Message, timeout: float) -> wire.Message:
        if not self._running:
            raise ClosedError("transport is not running")
        loop = asyncio.get_running_loop()
        self._rid += 1
        rid = self._rid
        fut = loop.create_future()
        self._waiting[rid] = fut
        ((frame, _),) = self._codec.frames([self._part(REQUEST, rid, msg, loop.time() + timeout)])
        self.stats.messages_out += 1
        if addr in self.net.transports:
            self.net._schedule(self.listen, addr, lambda: self._arrive(addr, rid, frame))
            timer = loop.call_later(timeout, self._expire, rid, addr, timeout)
        else:
            # nobody listens there: like ZeroMQ's unconnected peer, the request
            # waits unsent and expires as "not sent" (safe to send elsewhere)
            timer = loop.call_later(timeout, self._unsent, rid, addr, timeout)
        try:
            env = await fut
        finally:
            timer.cancel()
            self._waiting.pop(rid, None)
        if env.kind == REPLY:
            return env.message()
        raise env.exception()

    def send(self, addr: str, msg: wire.Message, ttl: float | None = None) -> bool:
        if not self._running:
            return False
        ((frame, _),) = self._codec.frames([self._part(ONEWAY, 0, msg, None)])
        self.stats.messages_out += 1
        self.net._schedule(self.listen, addr, lambda: self._arrive(addr, 0, frame))
        return True

    def _expire(self, rid: int, addr: str, timeout: float) -> None:
        fut = self._waiting.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(Timeout(f"no reply from {addr} within {timeout:g}s"))

    def _unsent(self, rid: int, addr: str, timeout: float) -> None:
        fut = self._waiting.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_exception(Unavailable(f"{addr} not reachable within {timeout:g}s; the request was not sent"))

    def _arrive(self, dst: str, rid: int, frame: bytes) -> None:
        target = self.net.transports.get(dst)
        if target is None or not target._running or target.handler is None:
            return  # nobody listening: the requester times out
        target._serve(self, rid, frame)

    def _serve(self, requester: "SimTransport", rid: int, frame: bytes) -> None:
        self.stats.messages_in += 1
        try:
            env = self._codec.decode(frame)[0]
            msg = env.message()
        except Exception:
            self.stats.malformed += 1
            return
        loop = asyncio.get_running_loop()
        deadline = None if env.budget_ms is None else loop.time() + env.budget_ms / 1000

        def send_reply(part: bytes) -> None:
            if self._running and requester._running:  # a stopped (crashed) node answers nothing
                ((reply, _),) = self._codec.frames([part])
                self.net._schedule(self.listen, requester.listen, lambda: requester._reply(reply))

        fast = getattr(self.handler, "answer_now", None)
        if rid and fast is not None and answer_now(fast, requester.listen.encode(), rid, msg, deadline, self._codec, self.stats, send_reply, loop):
            return

        async def handle() -> None:
            set_deadline(deadline)
            part = await run_handler(self.handler, requester.listen.encode(), rid, msg, self._codec, self.stats)  # type: ignore[arg-type]
            if rid:
                send_reply(part)

        task = loop.create_task(handle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reply(self, frame: bytes) -> None:
        if not self._running:
            return
        env = self._codec.decode(frame)[0]
        fut = self._waiting.get(env.request_id)
        if fut is not None and not fut.done():
            fut.set_result(env)
        else:
            self.stats.late_replies += 1
