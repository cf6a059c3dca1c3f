"""Transport: typed request/reply and one-way messages between nodes.

One ROUTER socket per node receives requests and one-way messages; one DEALER
per peer address (created on first use, then cached) sends them and receives
the replies. Every ZeroMQ message is an envelope *frame* (see
:mod:`ringkv.envelope`): all messages queued for the same peer during one
event-loop turn go out as one frame, which is where the throughput comes from.

Sockets are driven from the caller's asyncio loop the way ``zmq.asyncio``
drives them — a loop reader on each socket's ZMQ_FD, non-blocking calls — but
with one callback that drains every waiting frame per wake-up instead of one
future per message.

Delivery is best effort. DEALERs use ``IMMEDIATE``, so nothing is handed to
ZeroMQ for a peer that is not connected: messages wait in a bounded per-peer
queue of ours, where expired requests are dropped instead of being delivered
late to a peer that comes back. Frames over ``max_message_size`` are refused
by ZeroMQ itself (``MAXMSGSIZE``), which disconnects the sender; its pending
requests then time out.

Deadlines: a request carries its remaining budget; the receiver drops silently
a request whose budget is spent and a reply finished after it — the requester
has already raised :class:`~ringkv.errors.Timeout`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import os
import secrets
from typing import Awaitable, Callable, Optional

import zmq

from ringkv import wire
from ringkv.dispatch import (
    Ack,
    TransportStats,
    answer_now,
    call_local,
    current_deadline,
    error_part,
    run_handler,
    set_deadline,
    start_eagerly,
)
from ringkv.envelope import DEFAULT_MAX_SIZE, ERROR, ONEWAY, REPLY, REQUEST, Codec, Envelope
from ringkv.errors import BadRequest, ClosedError, ProtocolError, RingKVError, Timeout, Unavailable
from ringkv.peer import Peer

__all__ = ["Ack", "Handler", "Transport", "TransportStats", "call_local", "current_deadline"]

log = logging.getLogger("ringkv.transport")

#: ``async def handler(peer_id, msg) -> reply | None``; see :class:`Transport`.
Handler = Callable[[bytes, wire.Message], Awaitable["wire.Message | None"]]

_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)
_EVENTS, _POLLIN, _POLLOUT = int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.POLLOUT)
_DRAIN_LIMIT = 256  # frames read per wake-up before letting other callbacks run


class Transport:
    """Node-to-node messaging on the caller's running asyncio loop.

    ``listen`` is a ZeroMQ endpoint to bind (port ``0`` or ``*`` picks a free
    one; read :attr:`address` after :meth:`start`), or None for a client that
    only sends. ``handler(peer_id, msg)`` runs for each inbound request or
    one-way message, concurrently with the others: it starts at once and
    becomes its own task at its first real wait. For a request, its returned
    message is the reply (None sends :class:`Ack`), a raised
    :class:`RingKVError` becomes the same typed error at the requester, and
    any other exception a generic ``RingKVError`` reply and a log line.
    ``peer_id`` is the sender's opaque routing id (its listen address, or
    ``client``, and a random suffix; for logs only). A handler with an
    ``answer_now(peer_id, msg, deadline)`` attribute serves the requests it
    can without a coroutine (see :func:`ringkv.dispatch.answer_now`).

    Options: ``max_message_size`` bounds a frame both ways (ZeroMQ
    ``MAXMSGSIZE``; a larger outgoing message raises TooLarge); ``hwm`` is
    ZeroMQ's send/receive high-water mark, in frames; ``max_queue`` bounds the
    messages waiting per unreachable peer (beyond it requests raise
    Unavailable and one-way messages are dropped); ``reconnect_ivl`` /
    ``reconnect_ivl_max`` (seconds) are ZeroMQ's reconnect backoff;
    ``heartbeat_ivl`` (seconds) makes ZeroMQ notice a dead TCP peer after
    three silent intervals; ``context`` shares a ZeroMQ context (default:
    one of our own, terminated on stop).

    Not thread-safe: call it from the loop's thread only.
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
        context: zmq.Context | None = None,
    ) -> None:
        if listen is not None and handler is None:
            raise BadRequest("a listening transport needs a handler")
        self.listen = listen
        self.handler = handler
        self.stats = TransportStats()
        self.max_queue = max_queue
        #: Called before anything is sent (a node makes its writes durable here: group commit).
        self.before_send: Optional[Callable[[], None]] = None
        self._codec = Codec(max_message_size)
        self._sockopts = {
            zmq.LINGER: 0,
            zmq.MAXMSGSIZE: max_message_size,
            zmq.SNDHWM: hwm,
            zmq.RCVHWM: hwm,
            zmq.RECONNECT_IVL: max(1, int(reconnect_ivl * 1000)),
            zmq.RECONNECT_IVL_MAX: max(1, int(reconnect_ivl_max * 1000)),
            zmq.HEARTBEAT_IVL: int(heartbeat_ivl * 1000),  # notice dead TCP peers
            zmq.HEARTBEAT_TIMEOUT: int(heartbeat_ivl * 3000),
        }
        self._retry_ivl = min(reconnect_ivl, 0.1)
        self._given_ctx = context
        self._ctx: zmq.Context | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._router: zmq.Socket | None = None
        self._router_fd = -1
        self._address: str | None = None
        self._peers: dict[str, Peer] = {}
        self._waiting: dict[int, tuple[asyncio.Future, Peer, float]] = {}
        self._deadlines: list[tuple[float, int]] = []  # heap; entries of finished requests linger
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._rids = itertools.count(1)
        self._ids = itertools.count(1)
        self._token = secrets.token_hex(4)
        self._dirty: dict[Peer, None] = {}
        self._replies: dict[bytes, list[bytes]] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._started = self._closed = False
        self._faults = None  # fault injection for tests: see start() and ringkv.faults

    # ------------------------------------------------------------ lifecycle

    @property
    def address(self) -> str | None:
        """The endpoint actually bound (port 0 / ``*`` resolved); None if not listening."""
        return self._address

    async def start(self) -> None:
        """Bind the ROUTER; Unavailable if the address is in use, BadRequest if invalid."""
        if self._started:
            raise BadRequest("transport already started")
        self._loop = asyncio.get_running_loop()
        given = self._given_ctx
        self._ctx = zmq.Context() if given is None else zmq.Context.shadow(given.underlying)
        self._started = True
        if self.listen is None:
            return
        listen = self.listen
        if listen.startswith("tcp://") and listen.endswith(":0"):
            listen = listen[:-1] + "*"
        sock = self._ctx.socket(zmq.ROUTER)
        for opt, value in self._sockopts.items():
            sock.setsockopt(opt, value)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a reply to a vanished peer fails loudly
        # A peer's DEALER keeps its routing id across reconnects. Without handover,
        # a reconnect that arrives before the old connection is torn down (this
        # node was paused, e.g. SIGSTOP, longer than the heartbeat timeout) is
        # refused as a duplicate id and that peer is never answered again.
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # Heartbeats stay on the DEALERs (they decide whether a peer is
        # reachable). On the ROUTER they are off: libzmq 4.3.5's heartbeat timer
        # calls out_event() on connections whose input was stopped, which trips
        # its `!_io_error` assertion (stream_engine_base.cpp) and aborts the
        # process; the fault tests hit it when a peer was killed.
        sock.setsockopt(zmq.HEARTBEAT_IVL, 0)
        try:
            sock.bind(listen)
        except zmq.ZMQError as exc:
            sock.close(0)
            self._closed = True
            self._term()
            if exc.errno == zmq.EADDRINUSE:
                raise Unavailable(f"cannot listen on {self.listen}: address already in use") from None
            raise BadRequest(f"cannot listen on {self.listen}: {exc.strerror}") from None
        self._router = sock
        self._address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._router_fd = sock.getsockopt(zmq.FD)
        self._loop.add_reader(self._router_fd, self._drain_router)
        self._loop.call_soon(self._drain_router)
        # -- fault injection hook: only a node started with RINGKV_FAULTS set (ringkv.faults)
        if os.environ.get("RINGKV_FAULTS"):
            from ringkv.faults import Injector

            self._faults = Injector.from_env(self._address, self._loop)
        # -- end of fault injection hook

    async def stop(self) -> None:
        """Fail waiting requests with ClosedError, cancel handlers, close sockets."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        if self._faults is not None:  # fault injection hook (ringkv.faults)
            self._faults.close()
        for handle in (self._flush_handle, self._timer):
            if handle is not None:
                handle.cancel()
        waiting, self._waiting = self._waiting, {}
        for fut, _, _ in waiting.values():
            if not fut.done():
                fut.set_exception(ClosedError("transport stopped"))
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for peer in self._peers.values():
            peer.close(self._loop)  # type: ignore[arg-type]
        self._peers.clear()
        if self._router is not None:
            self._loop.remove_reader(self._router_fd)  # type: ignore[union-attr]
            self._router.close(0)
            self._router = None
        self._term()

    def _term(self) -> None:
        if self._given_ctx is None and self._ctx is not None:
            self._ctx.term()  # all sockets are closed with linger 0: returns at once
        self._ctx = None

    async def __aenter__(self) -> "Transport":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ outbound

    async def request(self, addr: str, msg: wire.Message, timeout: float) -> wire.Message:
        """Send ``msg`` to the node listening at ``addr``; return its reply.

        Raises the peer's typed error, :class:`Timeout` after ``timeout``
        seconds without a reply (peer down, slow or unreachable),
        :class:`ProtocolError` for an undecodable reply, :class:`Unavailable`
        when the queue to that peer is full, :class:`ClosedError` on stop.
        """
        fut, rid = self._enqueue(addr, msg, timeout)
        try:
            env: Envelope = await fut
        finally:
            self._waiting.pop(rid, None)
        if env.kind == REPLY:
            return env.message()
        raise env.exception()

    def request_future(self, addr: str, msg: wire.Message, timeout: float) -> asyncio.Future:
        """:meth:`request` as a plain future (no coroutine, no Task).

        A coordinator fanning out to several replicas waits on these
        directly; it saves a Task per replica per request.
        """
        out = self._loop.create_future()  # type: ignore[union-attr]
        try:
            fut, rid = self._enqueue(addr, msg, timeout)
        except RingKVError as exc:
            out.set_exception(exc)
            return out
        waiting = self._waiting

        def done(f: asyncio.Future) -> None:
            waiting.pop(rid, None)
            if out.done():
                return
            if f.cancelled():
                out.cancel()
                return
            exc = f.exception()
            if exc is not None:
                out.set_exception(exc)
                return
            env: Envelope = f.result()
            try:
                if env.kind == REPLY:
                    out.set_result(env.message())
                else:
                    out.set_exception(env.exception())
            except RingKVError as err:
                out.set_exception(err)

        fut.add_done_callback(done)
        return out

    def _enqueue(self, addr: str, msg: wire.Message, timeout: float) -> tuple[asyncio.Future, int]:
        peer = self._peers.get(addr) or self._connect(addr)
        if len(peer.queue) >= self.max_queue:
            raise Unavailable(f"send queue to {addr} is full")
        body = self._codec.pack_body(msg.to_body())
        loop = self._loop
        rid = next(self._rids)
        deadline = loop.time() + timeout  # type: ignore[union-attr]
        fut = loop.create_future()  # type: ignore[union-attr]
        waiting = self._waiting
        waiting[rid] = (fut, peer, timeout)
        peer.queue.append((REQUEST, rid, msg.TYPE, deadline, body))
        self._mark(peer)
        heap = self._deadlines
        heapq.heappush(heap, (deadline, rid))
        if deadline < self._timer_at:
            self._arm(deadline)
        elif len(heap) > 2 * len(waiting) + 1024:  # drop entries of finished requests
            heap[:] = [e for e in heap if e[1] in waiting]
            heapq.heapify(heap)
        return fut, rid

    def send(self, addr: str, msg: wire.Message, ttl: float | None = None) -> bool:
        """Queue a one-way message; never blocks. False (and counted) if dropped.

        ``ttl`` bounds how long it may wait for the peer and travels as its
        budget; None lets it wait as long as the queue has room.
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
        self._loop.add_reader(peer.fd, self._on_peer_events, peer)  # type: ignore[union-attr]
        return peer

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._expire)  # type: ignore[union-attr]
        self._timer_at = when

    def _expire(self) -> None:
        """Fail requests whose deadline passed; one timer for all of them."""
        self._timer, self._timer_at = None, math.inf
        heap, waiting = self._deadlines, self._waiting
        now = self._loop.time() + 1e-6  # type: ignore[union-attr]
        while heap and (heap[0][0] <= now or heap[0][1] not in waiting):
            _, rid = heapq.heappop(heap)
            entry = waiting.pop(rid, None)
            if entry is not None and not entry[0].done():
                fut, peer, timeout = entry
                if any(item[1] == rid and item[0] == REQUEST for item in peer.queue):
                    # Never handed to ZeroMQ: certainly not delivered, so safe to send elsewhere.
                    peer.queue[:] = [item for item in peer.queue if not (item[1] == rid and item[0] == REQUEST)]
                    fut.set_exception(Unavailable(f"{peer.addr} not reachable within {timeout:g}s; the request was not sent"))
                    continue
                fut.set_exception(Timeout(f"no reply from {peer.addr} within {timeout:g}s"))
        if heap:
            self._arm(heap[0][0])

    def _mark(self, peer: Peer) -> None:
        self._dirty[peer] = None
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def _reply(self, ident: bytes, part: bytes) -> None:
        if self._closed:
            return  # a handler that finished after stop(): nobody to answer
        parts = self._replies.get(ident)
        if parts is not None:
            parts.append(part)
            return
        self._replies[ident] = [part]
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def flush(self) -> None:
        """Send what is queued now rather than at the end of this loop turn."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()

    def _flush(self) -> None:
        """Send everything queued this loop turn, one frame per destination."""
        self._flush_handle = None
        if self.before_send is not None:
            self.before_send()  # raises: nothing is sent, the next flush tries again
        if self._dirty:
            dirty, self._dirty = self._dirty, {}
            now = self._loop.time()  # type: ignore[union-attr]
            for peer in dirty:
                if not peer.stuck and not peer.closed:
                    self._flush_peer(peer, now)
        if self._replies:
            replies, self._replies = self._replies, {}
            self._send_replies(replies)

    def _flush_peer(self, peer: Peer, now: float) -> None:
        if self._faults is not None:  # fault injection hook (ringkv.faults)
            self._faults.outbound(peer, now, self._mark)
        if not peer.flush(self._codec, now, self._waiting, self.stats):
            # ZeroMQ refused: wait for the FD to report the socket writable,
            # with a timer as a fallback
            peer.retry = self._loop.call_later(self._retry_ivl, self._unstick, peer)  # type: ignore[union-attr]
        self._on_peer_events(peer)  # a send can swallow the FD's edge

    def _unstick(self, peer: Peer) -> None:
        if peer.retry is not None:
            peer.retry.cancel()
            peer.retry = None
        peer.stuck = False
        if peer.queue and not peer.closed:
            self._mark(peer)

    def _send_replies(self, replies: dict[bytes, list[bytes]]) -> None:
        sock, stats = self._router, self.stats
        if sock is None:
            return
        if self._faults is not None:  # fault injection hook (ringkv.faults)
            replies = self._faults.replies(replies, self._loop.time(), self._reply)  # type: ignore[union-attr]
        send = sock.send
        for ident, parts in replies.items():
            for frame, count in self._codec.frames(parts):
                try:
                    send(ident, _SNDMORE | _NOBLOCK)
                    send(frame, _NOBLOCK)
                except zmq.ZMQError:  # EHOSTUNREACH: requester gone; EAGAIN: its HWM is full
                    stats.dropped += count
                else:
                    stats.frames_out += 1
                    stats.messages_out += count
        if sock.getsockopt(_EVENTS) & _POLLIN:
            self._drain_router()

    # ------------------------------------------------------------ inbound

    def _drain_router(self) -> None:
        sock = self._router
        if sock is None:
            return
        recv, stats = sock.recv_multipart, self.stats
        for _ in range(_DRAIN_LIMIT):
            try:
                parts = recv(_NOBLOCK)
            except zmq.Again:
                return
            stats.frames_in += 1
            if len(parts) != 2:
                stats.malformed += 1
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
                    self._reply(ident, error_part(self._codec, rid, exc))
            return
        stats.messages_in += len(envs)
        now = self._loop.time()  # type: ignore[union-attr]
        fast = getattr(self.handler, "answer_now", None)
        for env in envs:
            kind, budget = env.kind, env.budget_ms
            if kind != REQUEST and kind != ONEWAY:
                stats.malformed += 1
            elif budget == 0:
                stats.expired += 1
            else:
                try:
                    msg = env.message()
                except ProtocolError as exc:
                    stats.malformed += 1
                    if kind == REQUEST:
                        self._reply(ident, error_part(self._codec, env.request_id, exc))
                    continue
                deadline = None if budget is None else now + budget / 1000
                if kind == REQUEST:
                    rid = env.request_id
                    if fast is not None and answer_now(fast, ident, rid, msg, deadline, self._codec, stats,
                                                       lambda part, ident=ident: self._reply(ident, part), self._loop):
                        continue
                    coro = self._answer(ident, rid, msg, deadline)
                else:
                    coro = self._consume(ident, msg, deadline)
                start_eagerly(self._loop, coro, self._tasks)  # type: ignore[arg-type]

    async def _answer(self, ident: bytes, rid: int, msg: wire.Message, deadline: float | None) -> None:
        if deadline is not None:
            set_deadline(deadline)  # in this task's own context
        part = await run_handler(self.handler, ident, rid, msg, self._codec, self.stats)  # type: ignore[arg-type]
        if deadline is not None and self._loop.time() > deadline:  # type: ignore[union-attr]
            self.stats.expired += 1
        else:
            self._reply(ident, part)

    async def _consume(self, ident: bytes, msg: wire.Message, deadline: float | None) -> None:
        if deadline is not None:
            set_deadline(deadline)
        try:
            await self.handler(ident, msg)  # type: ignore[misc]
        except RingKVError as exc:  # bad input from a peer: one line, no traceback to flood the log with
            self.stats.errors += 1
            log.warning("one-way %s refused: %s", msg.TYPE, exc)
        except Exception:
            self.stats.errors += 1
            log.exception("handler failed on one-way %s", msg.TYPE)

    def _on_peer_events(self, peer: Peer) -> None:
        """Readable ZMQ_FD of a DEALER: read replies; retry sending if it became writable."""
        if peer.closed:
            return
        recv, stats = peer.sock.recv_multipart, self.stats
        for _ in range(_DRAIN_LIMIT):
            try:
                parts = recv(_NOBLOCK)
            except zmq.Again:
                break
            stats.frames_in += 1
            if len(parts) != 1:
                stats.malformed += 1
                continue
            self._on_reply_frame(peer, parts[0])
        else:
            self._loop.call_soon(self._on_peer_events, peer)  # type: ignore[union-attr]
        if peer.stuck and peer.sock.getsockopt(_EVENTS) & _POLLOUT:
            self._unstick(peer)

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
