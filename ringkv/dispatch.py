"""Serving one inbound message, with no sockets involved.

What a listening :class:`ringkv.transport.Transport` does with a decoded
request — run the handler, turn its result or exception into a reply
envelope — lives here, so :func:`call_local` can run a handler through
exactly the same path in a test, without ZeroMQ.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import types
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine

from ringkv import wire
from ringkv.envelope import DEFAULT_MAX_SIZE, ERROR, REPLY, REQUEST, Codec
from ringkv.errors import RingKVError, to_wire

__all__ = ["Ack", "FastHandler", "TransportStats", "answer_now", "call_local", "current_deadline"]

log = logging.getLogger("ringkv.transport")

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("ringkv_deadline", default=None)


@wire.message("transport.ack")
class Ack(wire.Message):
    """The reply sent when a request handler returns None."""


def current_deadline() -> float | None:
    """Loop-time (``loop.time()``) deadline of the request being handled.

    None outside a handler or when the requester set none. Handlers that
    fan out (a coordinator asking replicas) pass on what is left of it.
    """
    return _DEADLINE.get()


def set_deadline(deadline: float | None) -> None:
    _DEADLINE.set(deadline)


def start_eagerly(loop: asyncio.AbstractEventLoop, coro: Coroutine, tasks: set) -> None:
    """Run ``coro`` now, up to its first real wait; only then wrap it in a Task.

    Most handlers answer without waiting (a storage read, an echo), and
    skipping the Task for them saves a loop turn and its allocations per
    message (Python 3.12's eager tasks do the same). Each message still gets
    its own context, and a handler that waits becomes a Task kept in
    ``tasks`` so that stopping the transport can cancel it.
    """
    ctx = contextvars.copy_context()
    try:
        yielded = ctx.run(coro.send, None)
    except StopIteration:
        return
    task = ctx.run(loop.create_task, _finish(coro, yielded))  # the Task keeps a copy of ctx
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _finish(coro: Coroutine, yielded: Any) -> Any:
    return await _resume(coro, yielded)


@types.coroutine
def _resume(coro: Coroutine, yielded: Any):
    """Hand a started coroutine's pending wait to the Task, then keep driving it."""
    while True:
        try:
            value = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation thrown in by the Task
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


@dataclass
class TransportStats:
    """Counters; on a healthy node only the first four grow."""

    frames_in: int = 0
    frames_out: int = 0
    messages_in: int = 0
    messages_out: int = 0
    #: inbound frames or envelopes refused as broken (ProtocolError)
    malformed: int = 0
    #: outbound messages given up: queue or HWM full, requester gone, socket error
    dropped: int = 0
    #: requests dropped because their deadline passed before sending or answering
    expired: int = 0
    #: handler failures (answered with an error reply, or logged for one-way)
    errors: int = 0
    #: replies that arrived after their request gave up
    late_replies: int = 0


def error_part(codec: Codec, rid: int, exc: BaseException) -> bytes:
    """An ERROR envelope carrying ``exc`` as ``(code, message, details)``."""
    code, text, details = to_wire(exc)
    try:
        body = codec.pack_body([text, details])
    except RingKVError:  # details that cannot be encoded: keep the error, drop them
        body = codec.pack_body([text[:10_000], {}])
    return codec.part(ERROR, rid, code, None, body)


class FastHandler:
    """A transport handler whose ``answer_now`` serves some requests without a coroutine.

    Calling it is the general path: ``handle(peer, msg)`` (a coroutine).
    ``answer_now(peer, msg, deadline)`` returns a reply, a future of one, or
    NotImplemented for messages it leaves to the general path.
    """

    __slots__ = ("handle", "answer_now")

    def __init__(
        self,
        handle: Callable[[bytes, wire.Message], Awaitable["wire.Message | None"]],
        answer_now: Callable[[bytes, wire.Message, "float | None"], Any],
    ) -> None:
        self.handle = handle
        self.answer_now = answer_now

    def __call__(self, peer: bytes, msg: wire.Message) -> Awaitable["wire.Message | None"]:
        return self.handle(peer, msg)


def reply_part(codec: Codec, rid: int, result: "wire.Message | None") -> bytes:
    """The REPLY envelope for a handler's result (None: :class:`Ack`)."""
    if result is None:
        result = Ack()
    elif not isinstance(result, wire.Message):
        raise TypeError(f"handler returned {type(result).__name__}, not a Message")
    return codec.part(REPLY, rid, result.TYPE, None, codec.pack_body(result.to_body()))


def failure_part(codec: Codec, rid: int, exc: BaseException, msg: wire.Message, stats: TransportStats) -> bytes:
    """The ERROR envelope for a failed handler; a bug (not a RingKVError) is also logged."""
    stats.errors += 1
    if not isinstance(exc, RingKVError):
        log.error("handler failed on %s", msg.TYPE, exc_info=exc)
    return error_part(codec, rid, exc)


def answer_now(
    fast: Callable[[bytes, wire.Message, "float | None"], Any],
    peer: bytes,
    rid: int,
    msg: wire.Message,
    deadline: float | None,
    codec: Codec,
    stats: TransportStats,
    reply: Callable[[bytes], None],
    loop: asyncio.AbstractEventLoop,
) -> bool:
    """Serve ``msg`` through the handler's fast path; False when it has none for it.

    ``fast(peer, msg, deadline)`` returns a reply message, a future of one, or
    NotImplemented. No coroutine, context copy or Task is made: the reply is
    encoded when the future settles (dropped, as by the general path, when the
    requester's deadline has passed by then).
    """
    try:
        result = fast(peer, msg, deadline)
    except Exception as exc:
        reply(failure_part(codec, rid, exc, msg, stats))
        return True
    if result is NotImplemented:
        return False

    def done(fut: "asyncio.Future | None") -> None:
        try:
            part = reply_part(codec, rid, result if fut is None else fut.result())
        except asyncio.CancelledError:
            return  # the node is stopping
        except Exception as exc:
            part = failure_part(codec, rid, exc, msg, stats)
        if deadline is not None and loop.time() > deadline:
            stats.expired += 1
        else:
            reply(part)

    if isinstance(result, asyncio.Future):
        result.add_done_callback(done)
    else:
        done(None)
    return True


async def run_handler(
    handler: Callable[[bytes, wire.Message], Awaitable[wire.Message | None]],
    peer: bytes,
    rid: int,
    msg: wire.Message,
    codec: Codec,
    stats: TransportStats,
) -> bytes:
    """Run one request's handler and encode its outcome as a reply envelope."""
    try:
        return reply_part(codec, rid, await handler(peer, msg))
    except Exception as exc:  # a handler bug (not a RingKVError): the requester gets a generic error
        return failure_part(codec, rid, exc, msg, stats)


async def call_local(
    handler: Callable[[bytes, wire.Message], Awaitable[wire.Message | None]],
    msg: wire.Message,
    *,
    peer: bytes = b"local",
    max_message_size: int = DEFAULT_MAX_SIZE,
) -> wire.Message:
    """Answer ``msg`` with ``handler`` through the full envelope path, without sockets.

    Encodes the request frame, decodes it, runs the handler as a listening
    Transport would, encodes and decodes the reply frame, and returns the
    reply or raises the typed error a remote requester would see.
    """
    codec = Codec(max_message_size)
    ((frame, _),) = codec.frames([codec.part(REQUEST, 1, msg.TYPE, None, codec.pack_body(msg.to_body()))])
    decoded = codec.decode(frame)[0].message()
    part = await run_handler(handler, peer, 1, decoded, codec, TransportStats())
    ((frame, _),) = codec.frames([part])
    reply = codec.decode(frame)[0]
    if reply.kind == REPLY:
        return reply.message()
    raise reply.exception()
