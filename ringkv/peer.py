"""One outbound connection of a Transport: a DEALER and its send queue."""

from __future__ import annotations

import asyncio

import zmq

from ringkv.errors import BadRequest

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
