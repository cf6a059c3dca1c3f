"""Requests a handler answers through ``answer_now`` (no coroutine): same replies, same errors.

The node serves ``kv.get``, ``kv.put`` and replica batches this way. Every
case runs over the real ZeroMQ transport and over the simulated one, which
the simulation tests run nodes on: both must answer alike.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from ringkv import errors, wire
from ringkv.dispatch import FastHandler
from ringkv.simloop import SimNetwork, run_virtual
from ringkv.transport import Ack, Transport


@wire.message("fast_test.ask")
class Ask(wire.Message):
    how: str


@wire.message("fast_test.said")
class Said(wire.Message):
    text: str


class Service:
    """``answer_now`` for Ask (every way a fast handler can answer); the general path for the rest."""

    def __init__(self) -> None:
        self.general: list[str] = []
        self.later: list[asyncio.Future] = []
        self.deadlines: list[float | None] = []

    async def handle(self, peer: bytes, msg: wire.Message):
        self.general.append(msg.how)  # type: ignore[attr-defined]
        return Said("general:" + msg.how)  # type: ignore[attr-defined]

    def answer_now(self, peer: bytes, msg: wire.Message, deadline):
        if not isinstance(msg, Ask) or msg.how == "general":
            return NotImplemented
        self.deadlines.append(deadline)
        loop = asyncio.get_running_loop()
        how = msg.how
        if how == "now":
            return Said("now")
        if how == "none":
            return None
        if how == "bad-input":
            raise errors.BadRequest("no such thing")
        if how == "bug":
            raise KeyError("handler bug")
        fut = loop.create_future()
        if how == "later":
            loop.call_later(0.01, fut.set_result, Said("later"))
        elif how == "quorum":
            loop.call_soon(fut.set_exception, errors.QuorumError("too few", acks=1, required=2, failed=["n2"]))
        elif how == "late-bug":
            loop.call_soon(fut.set_exception, ZeroDivisionError("late bug"))
        elif how == "cancelled":
            loop.call_soon(fut.cancel)
        elif how == "hang":
            self.later.append(fut)  # settled after the requester gave up
        return fut


async def _until(condition, timeout: float = 5.0) -> None:
    """Poll ``condition()`` on the running loop's clock (real or simulated) until it holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.002)


async def _exercise(client_request, service: Service, stats) -> None:
    assert await client_request(Ask("now"), 5) == Said("now")
    assert await client_request(Ask("later"), 5) == Said("later")
    assert await client_request(Ask("none"), 5) == Ack()
    assert await client_request(Ask("general"), 5) == Said("general:general")
    assert service.general == ["general"]
    with pytest.raises(errors.BadRequest, match="no such thing"):
        await client_request(Ask("bad-input"), 5)
    with pytest.raises(errors.QuorumError) as info:
        await client_request(Ask("quorum"), 5)
    assert (info.value.acks, info.value.required, info.value.failed) == (1, 2, ["n2"])
    for how, text in (("bug", "KeyError"), ("late-bug", "ZeroDivisionError")):
        with pytest.raises(errors.RingKVError, match=text) as info:
            await client_request(Ask(how), 5)
        assert type(info.value) is errors.RingKVError  # a bug is not passed off as a typed error
    assert stats.errors == 4
    # a reply ready only after the requester's deadline is not sent
    with pytest.raises(errors.Timeout):
        await client_request(Ask("hang"), 0.05)
    expired = stats.expired
    loop = asyncio.get_running_loop()
    server_deadline = service.deadlines[-1]  # the requester's, plus the message's trip
    await _until(lambda: loop.time() > server_deadline)
    service.later[0].set_result(Said("too late"))
    await _until(lambda: stats.expired > expired)
    assert stats.expired == expired + 1
    # the deadline handed to answer_now is the requester's, on this loop's clock
    now = asyncio.get_running_loop().time()
    assert all(d is not None and now - 60 < d < now + 5 for d in service.deadlines)
    assert await client_request(Ask("now"), 5) == Said("now")  # still serving


async def _served(make_transport, scenario) -> None:
    """Run ``scenario(client, server, service)`` between two transports ``make_transport(listen, handler)`` makes."""
    service = Service()
    server = make_transport(None, FastHandler(service.handle, service.answer_now))
    client = make_transport(None, None)
    await server.start()
    await client.start()
    try:
        await scenario(client, server, service)
    finally:
        await client.stop()
        await server.stop()


def _zeromq(listen, handler):
    return Transport("tcp://127.0.0.1:0" if handler is not None else None, handler)


async def _exercise_pair(client, server, service) -> None:
    await _exercise(lambda msg, t: client.request(server.address, msg, t), service, server.stats)


def test_fast_path_over_zeromq(run):
    run(_served(_zeromq, _exercise_pair))


def test_fast_path_over_the_simulated_network():
    net = SimNetwork(random.Random(7))
    run_virtual(_served(net.transport, _exercise_pair), timeout=60)


def test_a_stopped_transport_sends_no_late_fast_replies(run):
    async def scenario(client, server, service):
        pending = asyncio.ensure_future(client.request(server.address, Ask("hang"), 0.3))
        await _until(lambda: service.later)
        flushes: list[int] = []
        server.before_send = lambda: flushes.append(1)  # a node syncs its storage here
        await server.stop()
        service.later[0].set_result(Said("after stop"))  # its storage may be closed by now
        with pytest.raises(errors.Timeout):
            await pending
        assert server.stats.messages_out == 0 and flushes == []

    run(_served(_zeromq, scenario))
