"""One outbound connection of a Transport: a DEALER and its send queue."""

from __future__ import annotations

import asyncio
import logging

import zmq

from ringkv.envelope import MAX_BUDGET_MS, REQUEST, Codec
from ringkv.errors import BadRequest

log = logging.getLogger("ringkv.transport")
_NOBLOCK = int(zmq.NOBLOCK)

__all__ = ["Peer"]


class Peer:
    """A DEALER connected to one peer's ROUTER, plus what waits to go there.

    ``queue`` holds ``(kind, request_id, type, deadline, packed_body)`` items
    not yet handed to ZeroMQ; the envelope header (with the remaining budget)
    is only built when the frame is sent. ``IMMEDIATE`` makes ZeroMQ refuse
    frames while the connection is down, so they stay here, bounded and
    expirable, instead of in a ZeroMQ pipe that would deliver them late.
    ``stuck`` is set while ZeroMQ refuses frames (not connected, or its HWM
    reached); the queue is retried when the socket turns writable.
    """

    __slots__ = ("addr", "sock", "fd", "queue", "stuck", "retry", "connected", "closed")

    def __init__(self, addr: str, ctx: zmq.Context, options: dict, routing_id: bytes) -> None:
        sock = ctx.socket(zmq.DEALER)
        try:
            for opt, value in options.items():
                sock.setsockopt(opt, value)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.ROUTING_ID, routing_id)
            sock.connect(addr)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise BadRequest(f"bad peer address {addr!r}: {exc}") from None
        self.addr = addr
        self.sock = sock
        self.fd: int = sock.getsockopt(zmq.FD)
        self.queue: list[tuple] = []
        self.stuck = False
        self.retry: asyncio.TimerHandle | None = None
        self.connected = False
        self.closed = False

    def flush(self, codec: Codec, now: float, waiting: dict, stats) -> bool:
        """Frame the queue and hand it to ZeroMQ; False if refused (the rest stays queued).

        Requests nobody waits for any more (``waiting`` has no entry) and
        messages past their deadline are dropped here and counted as expired.
        """
        items, self.queue = self.queue, []
        part = codec.part
        parts, live = [], []
        for item in items:
            kind, rid, type_, deadline, body = item
            budget = None
            if deadline is not None:
                budget = int((deadline - now) * 1000)
                if budget <= 0 or (kind == REQUEST and rid not in waiting):
                    stats.expired += 1
                    continue
                budget = min(budget, MAX_BUDGET_MS)
            parts.append(part(kind, rid, type_, budget, body))
            live.append(item)
        send, sent = self.sock.send, 0
        for frame, count in codec.frames(parts):
            try:
                send(frame, _NOBLOCK)
            except zmq.Again:  # not connected, or HWM reached: keep them for later
                self.queue[:0] = live[sent:]
                self.stuck, self.connected = True, False
                return False
            except zmq.ZMQError as exc:
                log.warning("send to %s failed: %s", self.addr, exc)
                stats.dropped += count
            else:
                self.connected = True
                stats.frames_out += 1
                stats.messages_out += count
            sent += count
        return True

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop watching the socket and close it (linger 0: unsent frames are dropped)."""
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        if self.retry is not None:
            self.retry.cancel()
        loop.remove_reader(self.fd)
        self.sock.close(0)
