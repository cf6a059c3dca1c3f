"""Transport: typed request/reply and one-way messages between nodes.

One ROUTER socket per node receives requests and one-way messages; one DEALER
per peer address (created on first use, then cached) sends them and receives
the replies. Every ZeroMQ message is an envelope *frame* (see
:mod:`ringkv.envelope`): messages queued for the same peer during one event
loop turn go out as one frame, which is where the throughput comes from.

Delivery is best effort. DEALERs use ``IMMEDIATE``, so nothing is handed to
ZeroMQ for a peer that is not connected: messages wait in a bounded per-peer
queue of ours, where expired requests are dropped instead of being delivered
late to a peer that comes back. Frames over ``max_message_size`` are refused
by ZeroMQ itself (``MAXMSGSIZE``), which disconnects the sender; its pending
requests then time out.

Deadlines: a request carries its remaining budget; the receiver answers only
while it is running, and drops silently a request (or reply) whose deadline
passed — the requester has already raised :class:`~ringkv.errors.Timeout`.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import secrets
from dataclasses import dataclass
from typing import Awaitable, Callable

import zmq
import zmq.asyncio

from ringkv import wire
from ringkv.envelope import DEFAULT_MAX_SIZE, ERROR, MAX_BUDGET_MS, ONEWAY, REPLY, REQUEST, Codec, Envelope
from ringkv.errors import BadRequest, ClosedError, ProtocolError, RingKVError, Timeout, Unavailable, to_wire
from ringkv.peer import Peer

__all__ = ["Ack", "Handler", "Transport", "TransportStats", "call_local", "current_deadline"]

log = logging.getLogger("ringkv.transport")

#: ``async def handler(peer_id, msg) -> reply | None``; see :class:`Transport`.
Handler = Callable[[bytes, wire.Message], Awaitable["wire.Message | None"]]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("ringkv_deadline", default=None)
_DRAIN_LIMIT = 512  # frames read per wake-up before yielding to the loop


@wire.message("transport.ack")
class Ack(wire.Message):
    """The reply sent when a request handler returns None."""


def current_deadline() -> float | None:
    """Loop-time deadline of the request being handled, for handlers that fan out."""
    return _DEADLINE.get()


@dataclass
class TransportStats:
    """Counters; a healthy node only grows the first four."""

    frames_in: int = 0
    frames_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    #: inbound frames or envelopes refused as broken (ProtocolError)
    malformed: int = 0
    #: outbound messages given up: queue or HWM full, peer gone, socket error
    dropped: int = 0
    #: requests dropped because their deadline passed before sending or answering
    expired: int = 0
    #: handler failures (answered with an error reply, or logged for one-way)
    errors: int = 0
    #: replies that arrived after their request gave up
    late_replies: int = 0


class Transport:
    """Node-to-node messaging on the caller's running asyncio loop.

    ``listen`` is a ZeroMQ endpoint to bind (port ``0`` or ``*`` picks a free
    one; read :attr:`address` after :meth:`start`), or None for a client that
    only sends. ``handler(peer_id, msg)`` runs concurrently for each inbound
    request or one-way message; for a request its returned message is the
    reply (None sends :class:`Ack`), a raised :class:`RingKVError` becomes
    the same typed error at the requester, and any other exception a generic
    error reply (and a log line). ``peer_id`` is the sender's opaque ZeroMQ
    routing id (its listen address plus a random suffix; for logs only).
    """

    def __init__(
        self,
        listen: str | None,
        handler: Handler | None = None,
        *,
        max_message_size: int = DEFAULT_MAX_SIZE,
        hwm: int = 10_000,
        max_queue: int = 10_000,
        reconnect_ivl: float = 0.1,
        reconnect_ivl_max: float = 5.0,
        heartbeat_ivl: float = 1.0,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        if listen is not None and handler is None:
            raise BadRequest("a listening transport needs a handler")
        self.listen = listen
        self.handler = handler
        self.stats = TransportStats()
        self.max_queue = max_queue
        self._codec = Codec(max_message_size)
        self._sockopts = {
            zmq.LINGER: 0,
            zmq.MAXMSGSIZE: max_message_size,
            zmq.SNDHWM: hwm,
            zmq.RCVHWM: hwm,
            zmq.RECONNECT_IVL: max(1, int(reconnect_ivl * 1000)),
            zmq.RECONNECT_IVL_MAX: max(1, int(reconnect_ivl_max * 1000)),
            zmq.HEARTBEAT_IVL: int(heartbeat_ivl * 1000),
            zmq.HEARTBEAT_TIMEOUT: int(heartbeat_ivl * 3000),
        }
        self._ctx = context
        self._own_ctx = context is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._router: zmq.asyncio.Socket | None = None
        self._router_sync: zmq.Socket | None = None
        self._address: str | None = None
        self._peers: dict[str, Peer] = {}
        self._waiting: dict[int, tuple[asyncio.Future, Peer]] = {}
        self._rids = itertools.count(1)
        self._ids = itertools.count(1)
        self._token = secrets.token_hex(4)
        self._dirty: dict[Peer, None] = {}
        self._replies: dict[bytes, list[bytes]] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._started = self._closed = False

    # ------------------------------------------------------------ lifecycle

    @property
    def address(self) -> str | None:
        """The endpoint actually bound (resolves port 0 / ``*``), None if not listening."""
        return self._address

    async def start(self) -> None:
        """Bind the ROUTER; Unavailable if the address is in use."""
        if self._started:
            raise BadRequest("transport already started")
        self._loop = asyncio.get_running_loop()
        if self._ctx is None:
            self._ctx = zmq.asyncio.Context()
        self._started = True
        if self.listen is None:
            return
        listen = self.listen
        if listen.startswith("tcp://") and listen.endswith(":0"):
            listen = listen[:-1] + "*"
        sock = self._ctx.socket(zmq.ROUTER)
        for opt, value in self._sockopts.items():
            sock.setsockopt(opt, value)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        try:
            sock.bind(listen)
        except zmq.ZMQError as exc:
            sock.close(0)
            await self._close_context()
            if exc.errno == zmq.EADDRINUSE:
                raise Unavailable(f"cannot listen on {self.listen}: address already in use") from None
            raise BadRequest(f"cannot listen on {self.listen}: {exc}") from None
        self._router = sock
        self._router_sync = zmq.Socket.shadow(sock.underlying)
        self._address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._spawn(self._read_router())

    async def stop(self) -> None:
        """Fail waiting requests with ClosedError, cancel handlers, close sockets."""
        if self._closed:
            return
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        waiting, self._waiting = self._waiting, {}
        for fut, _ in waiting.values():
            if not fut.done():
                fut.set_exception(ClosedError("transport stopped"))
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for peer in self._peers.values():
            peer.close()
        self._peers.clear()
        if self._router is not None:
            self._router.close(0)
            self._router = self._router_sync = None
        await self._close_context()

    async def _close_context(self) -> None:
        if self._own_ctx and self._ctx is not None:
            self._ctx.term()  # every socket has linger 0, so this returns at once
            self._ctx = None

    async def __aenter__(self) -> "Transport":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _spawn(self, coro) -> asyncio.Task:
        task = self._loop.create_task(coro)  # type: ignore[union-attr]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------ outbound

    async def request(self, addr: str, msg: wire.Message, timeout: float) -> wire.Message:
        """Send ``msg`` to the node at ``addr`` and return its reply.

        Raises the peer's typed error, :class:`Timeout` after ``timeout``
        seconds without a reply (peer down, slow or unreachable),
        :class:`ProtocolError` for an undecodable reply, :class:`Unavailable`
        when the queue to that peer is full, :class:`ClosedError` on stop.
        """
        peer = self._peers.get(addr) or self._connect(addr)
        if len(peer.queue) >= self.max_queue:
            raise Unavailable(f"send queue to {addr} is full")
        body = self._codec.pack_body(msg.to_body())
        loop = self._loop
        rid = next(self._rids)
        deadline = loop.time() + timeout  # type: ignore[union-attr]
        fut = loop.create_future()  # type: ignore[union-attr]
        self._waiting[rid] = (fut, peer)
        peer.queue.append((REQUEST, rid, msg.TYPE, deadline, body))
        self._mark(peer)
        timer = loop.call_at(deadline, self._expire, rid, addr, timeout)  # type: ignore[union-attr]
        try:
            env: Envelope = await fut
        finally:
            timer.cancel()
            self._waiting.pop(rid, None)
        if env.kind == REPLY:
            return env.message()
        raise env.exception()

    def send(self, addr: str, msg: wire.Message, ttl: float | None = None) -> bool:
        """Send a one-way message; never blocks. False (and counted) if dropped.

        ``ttl`` bounds how long it may wait for a connection and is passed on
        as its budget; None waits as long as the queue has room.
        """
        peer = self._peers.get(addr) or self._connect(addr)
        if len(peer.queue) >= self.max_queue:
            self.stats.dropped += 1
            return False
        body = self._codec.pack_body(msg.to_body())
        deadline = None if ttl is None else self._loop.time() + ttl  # type: ignore[union-attr]
        peer.queue.append((ONEWAY, 0, msg.TYPE, deadline, body))
        self._mark(peer)
        return True

    def _connect(self, addr: str) -> Peer:
        if self._closed or not self._started:
            raise ClosedError("transport is not running")
        if not isinstance(addr, str):
            raise BadRequest(f"peer address must be a str, not {type(addr).__name__}")
        ident = f"{self._address or 'client'}#{self._token}.{next(self._ids)}".encode()
        peer = Peer(addr, self._ctx, self._sockopts, ident)  # type: ignore[arg-type]
        self._peers[addr] = peer
        peer.reader = self._spawn(self._read_peer(peer))
        return peer

    def _expire(self, rid: int, addr: str, timeout: float) -> None:
        entry = self._waiting.pop(rid, None)
        if entry is not None and not entry[0].done():
            why = "" if entry[1].connected else " (not connected)"
            entry[0].set_exception(Timeout(f"no reply from {addr} within {timeout:g}s{why}"))

    def _mark(self, peer: Peer) -> None:
        self._dirty[peer] = None
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def _reply(self, ident: bytes, part: bytes) -> None:
        parts = self._replies.get(ident)
        if parts is None:
            self._replies[ident] = [part]
            if self._flush_handle is None:
                self._flush_handle = self._loop.call_soon(self._flush)  # type: ignore[union-attr]
        else:
            parts.append(part)

    def _flush(self) -> None:
        """Send everything queued this loop turn, one frame per destination."""
        self._flush_handle = None
        if self._dirty:
            dirty, self._dirty = self._dirty, {}
            now = self._loop.time()  # type: ignore[union-attr]
            for peer in dirty:
                if peer.writer is None and not peer.closed:
                    self._flush_peer(peer, now)
        if self._replies:
            replies, self._replies = self._replies, {}
            self._send_replies(replies)

    def _flush_peer(self, peer: Peer, now: float) -> None:
        items, peer.queue = peer.queue, []
        part, waiting, stats = self._codec.part, self._waiting, self.stats
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
        sent = 0
        for frame, count in self._codec.frames(parts):
            try:
                peer.sync.send(frame, zmq.NOBLOCK)
            except zmq.Again:  # not connected yet, or HWM: wait until writable
                peer.queue[:0] = live[sent:]
                peer.connected = False
                peer.writer = self._spawn(self._await_writable(peer))
                break
            except zmq.ZMQError as exc:
                log.warning("send to %s failed: %s", peer.addr, exc)
                stats.dropped += count
            else:
                peer.connected = True
                stats.frames_out += 1
                stats.messages_out += count
            sent += count
        if peer.sync.get(zmq.EVENTS) & zmq.POLLIN:  # a send can swallow the FD's read edge
            self._drain_peer(peer)

    async def _await_writable(self, peer: Peer) -> None:
        try:
            await peer.sock.poll(None, zmq.POLLOUT)
        finally:
            peer.writer = None
        if peer.queue and not self._closed:
            self._mark(peer)

    def _send_replies(self, replies: dict[bytes, list[bytes]]) -> None:
        sock, stats = self._router_sync, self.stats
        if sock is None:
            return
        for ident, parts in replies.items():
            for frame, count in self._codec.frames(parts):
                try:
                    sock.send(ident, zmq.SNDMORE | zmq.NOBLOCK)
                    sock.send(frame, zmq.NOBLOCK)
                except zmq.ZMQError:  # EHOSTUNREACH: requester gone; EAGAIN: its HWM is full
                    stats.dropped += count
                else:
                    stats.frames_out += 1
                    stats.messages_out += count
        if sock.get(zmq.EVENTS) & zmq.POLLIN:
            self._drain_router()

    # ------------------------------------------------------------ inbound

    async def _read_router(self) -> None:
        sock = self._router
        while True:
            await sock.poll(None, zmq.POLLIN)  # type: ignore[union-attr]
            self._drain_router()

    def _drain_router(self) -> None:
        sock = self._router_sync
        if sock is None:
            return
        for _ in range(_DRAIN_LIMIT):
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.stats.frames_in += 1
            if len(parts) != 2:
                self.stats.malformed += 1
                continue
            self._on_request_frame(parts[0], parts[1])
        self._loop.call_soon(self._drain_router)  # type: ignore[union-attr]

    def _on_request_frame(self, ident: bytes, frame: bytes) -> None:
        stats = self.stats
        try:
            envs = self._codec.decode(frame)
        except ProtocolError as exc:
            stats.malformed += 1
            log.debug("malformed frame from %r: %s", ident, exc)
            for kind, rid in exc.salvage:  # type: ignore[attr-defined]
                if kind == REQUEST:
                    self._reply(ident, self._error_part(rid, exc))
            return
        stats.messages_in += len(envs)
        now = self._loop.time()  # type: ignore[union-attr]
        for env in envs:
            kind = env.kind
            if kind != REQUEST and kind != ONEWAY:
                stats.malformed += 1
                continue
            budget = env.budget_ms
            if budget == 0:
                stats.expired += 1
                continue
            try:
                msg = env.message()
            except ProtocolError as exc:
                stats.malformed += 1
                if kind == REQUEST:
                    self._reply(ident, self._error_part(env.request_id, exc))
                continue
            deadline = None if budget is None else now + budget / 1000
            if kind == REQUEST:
                self._spawn(self._answer(ident, env.request_id, msg, deadline))
            else:
                self._spawn(self._consume(ident, msg, deadline))

    async def _answer(self, ident: bytes, rid: int, msg: wire.Message, deadline: float | None) -> None:
        if deadline is not None:
            _DEADLINE.set(deadline)  # this task's own context copy
        part = await _run_handler(self.handler, ident, rid, msg, self._codec, self.stats)  # type: ignore[arg-type]
        if deadline is not None and self._loop.time() > deadline:  # type: ignore[union-attr]
            self.stats.expired += 1
            return
        self._reply(ident, part)

    async def _consume(self, ident: bytes, msg: wire.Message, deadline: float | None) -> None:
        if deadline is not None:
            _DEADLINE.set(deadline)
        try:
            await self.handler(ident, msg)  # type: ignore[misc]
        except Exception:
            self.stats.errors += 1
            log.exception("handler failed on one-way %s", msg.TYPE)

    async def _read_peer(self, peer: Peer) -> None:
        while not peer.closed:
            await peer.sock.poll(None, zmq.POLLIN)
            self._drain_peer(peer)

    def _drain_peer(self, peer: Peer) -> None:
        if peer.closed:
            return
        recv, stats = peer.sync.recv_multipart, self.stats
        for _ in range(_DRAIN_LIMIT):
            try:
                parts = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            stats.frames_in += 1
            if len(parts) != 1:
                stats.malformed += 1
                continue
            self._on_reply_frame(peer, parts[0])
        self._loop.call_soon(self._drain_peer, peer)  # type: ignore[union-attr]

    def _on_reply_frame(self, peer: Peer, frame: bytes) -> None:
        stats, waiting = self.stats, self._waiting
        try:
            envs = self._codec.decode(frame)
        except ProtocolError as exc:
            stats.malformed += 1
            log.debug("malformed reply frame from %s: %s", peer.addr, exc)
            for kind, rid in exc.salvage:  # type: ignore[attr-defined]
                entry = waiting.get(rid)
                if kind != REQUEST and entry is not None and entry[1] is peer and not entry[0].done():
                    entry[0].set_exception(ProtocolError(f"bad reply from {peer.addr}: {exc}"))
            return
        stats.messages_in += len(envs)
        for env in envs:
            if env.kind != REPLY and env.kind != ERROR:
                stats.malformed += 1
                continue
            entry = waiting.get(env.request_id)
            if entry is None or entry[1] is not peer or entry[0].done():
                stats.late_replies += 1
                continue
            entry[0].set_result(env)

    def _error_part(self, rid: int, exc: BaseException) -> bytes:
        return _error_part(self._codec, rid, exc)


def _error_part(codec: Codec, rid: int, exc: BaseException) -> bytes:
    code, text, details = to_wire(exc)
    try:
        body = codec.pack_body([text, details])
    except RingKVError:  # details that cannot be encoded: keep the error, drop them
        body = codec.pack_body([text[:10_000], {}])
    return codec.part(ERROR, rid, code, None, body)


async def _run_handler(
    handler: Handler, ident: bytes, rid: int, msg: wire.Message, codec: Codec, stats: TransportStats
) -> bytes:
    """Run one request's handler and encode its outcome as a reply envelope."""
    try:
        result = await handler(ident, msg)
        if result is None:
            result = Ack()
        return codec.part(REPLY, rid, result.TYPE, None, codec.pack_body(result.to_body()))
    except RingKVError as exc:
        stats.errors += 1
        return _error_part(codec, rid, exc)
    except Exception as exc:
        stats.errors += 1
        log.exception("handler failed on %s", msg.TYPE)
        return _error_part(codec, rid, exc)


async def call_local(
    handler: Handler, msg: wire.Message, *, peer: bytes = b"local", max_message_size: int = DEFAULT_MAX_SIZE
) -> wire.Message:
    """Answer ``msg`` with ``handler`` through the full envelope path, without sockets.

    Encodes the request, decodes it, runs the handler exactly as a listening
    Transport would, encodes the reply, decodes it, and returns the reply
    message or raises the typed error the requester would see.
    """
    codec = Codec(max_message_size)
    (frame, _), = codec.frames([codec.part(REQUEST, 1, msg.TYPE, None, codec.pack_body(msg.to_body()))])
    env = codec.decode(frame)[0]
    try:
        decoded = env.message()
    except ProtocolError as exc:
        raise ProtocolError(str(exc)) from None
    part = await _run_handler(handler, peer, 1, decoded, codec, TransportStats())
    (frame, _), = codec.frames([part])
    reply = codec.decode(frame)[0]
    if reply.kind == REPLY:
        return reply.message()
    raise reply.exception()
