"""One outbound connection of a Transport: a DEALER and its send queue."""

from __future__ import annotations

import asyncio

import zmq
import zmq.asyncio

from ringkv.errors import BadRequest

__all__ = ["Peer"]


class Peer:
    """A DEALER connected to one peer's ROUTER, plus what waits to go there.

    ``queue`` holds ``(kind, request_id, type, deadline, packed_body)`` items
    not yet handed to ZeroMQ; the envelope header (with the remaining budget)
    is only built when the frame is sent. ``IMMEDIATE`` makes ZeroMQ refuse
    frames while the connection is down, so they stay here, bounded and
    expirable, instead of in a ZeroMQ pipe that delivers them late.
    """

    __slots__ = ("addr", "sock", "sync", "queue", "reader", "writer", "connected", "closed")

    def __init__(self, addr: str, ctx: zmq.asyncio.Context, options: dict, routing_id: bytes) -> None:
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
        self.sync = zmq.Socket.shadow(sock.underlying)  # non-blocking calls without a future each
        self.queue: list[tuple] = []
        self.reader: asyncio.Task | None = None
        self.writer: asyncio.Task | None = None
        self.connected = False
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.queue.clear()
        self.sock.close(0)
