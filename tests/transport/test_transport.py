"""Transport over real sockets on loopback."""

from __future__ import annotations

import asyncio
import contextvars
import time

import msgpack
import pytest
import zmq
import zmq.asyncio

from ringkv import errors, wire
from ringkv.envelope import ERROR, ONEWAY, REPLY, REQUEST, decode
from ringkv.transport import Ack, Transport, call_local, current_deadline


@wire.message("transport_test.echo")
class Echo(wire.Message):
    data: bytes


@wire.message("transport_test.fail")
class Fail(wire.Message):
    kind: str


@wire.message("transport_test.wait")
class Wait(wire.Message):
    key: str


@wire.message("transport_test.note")
class Note(wire.Message):
    n: int


@wire.message("transport_test.steps")
class Steps(wire.Message):
    how: str


LEAK: contextvars.ContextVar[str] = contextvars.ContextVar("transport_test_leak", default="clean")


class Server:
    """A handler with knobs: echo, typed failures, requests that wait on a gate."""

    def __init__(self) -> None:
        self.notes: list[int] = []
        self.notes_done = asyncio.Event()
        self.expect_notes = 0
        self.gates: dict[str, asyncio.Event] = {}
        self.deadlines: list[float | None] = []

    async def __call__(self, peer: bytes, msg: wire.Message):
        if isinstance(msg, Echo):
            self.deadlines.append(current_deadline())
            return msg
        if isinstance(msg, Fail):
            if msg.kind == "quorum":
                raise errors.QuorumError("not enough", acks=1, required=2, failed=["tcp://n2", "tcp://n3"])
            if msg.kind == "notfound":
                raise errors.KeyspaceNotFound("no keyspace users")
            if msg.kind == "none":
                return None
            if msg.kind == "bad-reply":
                return "not a message"
            raise ZeroDivisionError("handler bug")
        if isinstance(msg, Wait):
            await self.gates.setdefault(msg.key, asyncio.Event()).wait()
            return Echo(msg.key.encode())
        if isinstance(msg, Steps):
            seen = f"{LEAK.get()}/{current_deadline() is not None}"
            LEAK.set("dirty")  # must not be visible to the next message
            if msg.how == "yield":
                await asyncio.sleep(0)
            elif msg.how == "sleep":
                await asyncio.sleep(0.01)
            elif msg.how == "future":
                fut = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_soon(fut.set_result, None)
                await fut
            elif msg.how == "raise-later":
                await asyncio.sleep(0)
                raise errors.NotFound("late failure")
            return Echo(seen.encode())
        if isinstance(msg, Note):
            self.notes.append(msg.n)
            if len(self.notes) >= self.expect_notes:
                self.notes_done.set()
        return None


async def pair(**kw):
    server = Transport("tcp://127.0.0.1:0", Server(), **kw)
    await server.start()
    client = Transport(None)
    await client.start()
    return server, client


def test_request_reply_and_bound_address(run):
    async def main():
        server, client = await pair()
        try:
            assert server.address.startswith("tcp://127.0.0.1:") and not server.address.endswith(":0")
            assert await client.request(server.address, Echo(b"hello"), 5) == Echo(b"hello")
            assert await client.request(server.address, Fail("none"), 5) == Ack()
            assert server.stats.messages_in == 2 and client.stats.messages_in == 2
        finally:
            await client.stop()
            await server.stop()

    run(main())


def test_star_port_binds_too(run):
    async def main():
        async with Transport("tcp://127.0.0.1:*", Server()) as t:
            assert t.address.rsplit(":", 1)[1].isdigit()

    run(main())


def test_thousand_requests_64_in_flight_are_batched(run):
    async def main():
        server, client = await pair()
        try:
            queue = list(range(1000))
            results = {}

            async def worker():
                while queue:
                    i = queue.pop()
                    results[i] = await client.request(server.address, Echo(i.to_bytes(4, "big") * 25), 10)

            await asyncio.gather(*(worker() for _ in range(64)))
            assert all(results[i] == Echo(i.to_bytes(4, "big") * 25) for i in range(1000))
            # many envelopes per frame: batching is in use
            assert client.stats.messages_out == 1000 and client.stats.frames_out < 500
            assert server.stats.messages_out == 1000 and server.stats.frames_out < 500
        finally:
            await client.stop()
            await server.stop()

    run(main())


def test_one_way_messages(run):
    async def main():
        server, client = await pair()
        try:
            server.handler.expect_notes = 500
            for i in range(500):
                assert client.send(server.address, Note(i))
            await asyncio.wait_for(server.handler.notes_done.wait(), 10)
            assert sorted(server.handler.notes) == list(range(500))
            assert server.stats.messages_out == 0  # no replies to one-way messages
        finally:
            await client.stop()
            await server.stop()

    run(main())


def test_remote_errors_arrive_typed(run):
    async def main():
        server, client = await pair()
        try:
            with pytest.raises(errors.QuorumError) as info:
                await client.request(server.address, Fail("quorum"), 5)
            assert (info.value.acks, info.value.required) == (1, 2)
            assert info.value.failed == ["tcp://n2", "tcp://n3"]
            assert "not enough" in str(info.value)
            with pytest.raises(errors.KeyspaceNotFound, match="no keyspace users"):
                await client.request(server.address, Fail("notfound"), 5)
            with pytest.raises(errors.RingKVError, match="ZeroDivisionError: handler bug") as info:
                await client.request(server.address, Fail("bug"), 5)
            assert type(info.value) is errors.RingKVError
            with pytest.raises(errors.RingKVError, match="not a Message"):
                await client.request(server.address, Fail("bad-reply"), 5)
            assert server.stats.errors == 4
            assert await client.request(server.address, Echo(b"still up"), 5) == Echo(b"still up")
        finally:
            await client.stop()
            await server.stop()

    run(main())


def test_slow_handler_does_not_block_others_and_deadline_is_visible(run):
    async def main():
        server, client = await pair()
        try:
            slow = asyncio.ensure_future(client.request(server.address, Wait("gate"), 10))
            before = asyncio.get_running_loop().time()
            for i in range(20):
                assert await client.request(server.address, Echo(b"%d" % i), 5) == Echo(b"%d" % i)
            assert not slow.done()
            deadline = server.handler.deadlines[0]
            assert before < deadline <= asyncio.get_running_loop().time() + 5
            server.handler.gates["gate"].set()
            assert await asyncio.wait_for(slow, 5) == Echo(b"gate")
        finally:
            await client.stop()
            await server.stop()

    run(main())


def test_handlers_that_wait_in_different_ways(run):
    async def main():
        server, client = await pair()
        raw = RawPeer(server.address)
        try:
            hows = ["sync", "yield", "sleep", "future"] * 10
            replies = await asyncio.gather(*(client.request(server.address, Steps(h), 5) for h in hows))
            assert replies == [Echo(b"clean/True")] * len(hows)
            with pytest.raises(errors.NotFound, match="late failure"):
                await client.request(server.address, Steps("raise-later"), 5)
            await raw.send([REQUEST, 1, Steps.TYPE, None, ["sync"]])  # no budget: no deadline
            (env,) = await raw.recv()
            assert env.message() == Echo(b"clean/False")
        finally:
            raw.close()
            await client.stop()
            await server.stop()

    run(main())


def test_timeout_when_peer_does_not_answer(run):
    async def main():
        server, client = await pair()
        try:
            t0 = time.monotonic()
            with pytest.raises(errors.Timeout, match="within 0.2s") as info:
                await client.request(server.address, Wait("never"), 0.2)
            assert isinstance(info.value, TimeoutError)
            assert 0.15 < time.monotonic() - t0 < 2
        finally:
            await client.stop()
            await server.stop()  # cancels the handler still waiting: no leaked task

    run(main())


def test_timeouts_fire_on_time_among_many_answered_requests(run):
    async def main():
        server, client = await pair()
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            stuck = [
                asyncio.ensure_future(client.request(server.address, Wait(f"w{i}"), 0.2 + i / 100)) for i in range(30)
            ]
            todo = list(range(3000))

            async def worker():
                while todo:
                    i = todo.pop()
                    assert await client.request(server.address, Echo(b"%d" % i), 10) == Echo(b"%d" % i)

            await asyncio.gather(*(worker() for _ in range(100)))
            for i, fut in enumerate(stuck):
                with pytest.raises(errors.Timeout):
                    await fut
                assert loop.time() - t0 >= 0.2 + i / 100
            assert len(client._deadlines) < 2000  # finished requests do not pile up
        finally:
            await client.stop()
            await server.stop()

    run(main())


def test_unsent_request_to_a_stopped_peer_is_unavailable(run):
    """Never handed to ZeroMQ: certainly not delivered, so callers may safely send it elsewhere."""

    async def main():
        async with Transport("tcp://127.0.0.1:0", Server()) as gone:
            addr = gone.address
        async with Transport(None) as client:
            with pytest.raises(errors.Unavailable, match="not sent"):
                await client.request(addr, Echo(b"x"), 0.3)
            assert client.stats.messages_out == 0  # nothing was handed to ZeroMQ

    run(main())


def test_request_waits_for_a_peer_that_starts_late(run):
    async def main():
        async with Transport("tcp://127.0.0.1:0", Server()) as first:
            addr = first.address
        client = Transport(None, reconnect_ivl=0.02)
        await client.start()
        try:
            pending = asyncio.ensure_future(client.request(addr, Echo(b"late"), 10))
            for _ in range(5):  # a few loop turns: queued, flushed, refused by IMMEDIATE
                await asyncio.sleep(0)
            assert not pending.done() and client.stats.messages_out == 0
            async with Transport(addr, Server()):
                assert await asyncio.wait_for(pending, 10) == Echo(b"late")
        finally:
            await client.stop()

    run(main())


def test_client_recovers_when_the_peer_restarts(run):
    async def main():
        loop = asyncio.get_running_loop()
        first = Transport("tcp://127.0.0.1:0", Server())
        await first.start()
        addr = first.address
        try:
            async with Transport(None, reconnect_ivl=0.02) as client:
                assert await client.request(addr, Echo(b"1"), 5) == Echo(b"1")
                await first.stop()
                async with Transport(addr, Server()):
                    give_up = loop.time() + 10
                    while True:  # a request sent into the dying connection is lost: retry
                        try:
                            assert await client.request(addr, Echo(b"2"), 0.3) == Echo(b"2")
                            break
                        except errors.Timeout:
                            assert loop.time() < give_up
        finally:
            await first.stop()

    run(main())


def test_address_in_use_and_bad_addresses(run):
    async def main():
        async with Transport("tcp://127.0.0.1:0", Server()) as first:
            second = Transport(first.address, Server())
            with pytest.raises(errors.Unavailable, match="in use"):
                await second.start()
            with pytest.raises(errors.BadRequest):
                await Transport("bogus://x", Server()).start()
            async with Transport(None) as client:
                with pytest.raises(errors.BadRequest):
                    await client.request("not an address", Echo(b""), 1)

    run(main())


def test_stop_fails_pending_requests_with_closed_error(run):
    async def main():
        server, client = await pair()
        try:
            pending = asyncio.ensure_future(client.request(server.address, Wait("never"), 10))
            await client.request(server.address, Echo(b"sync"), 5)  # the Wait is now in the server
            await client.stop()
            with pytest.raises(errors.ClosedError):
                await pending
            with pytest.raises(errors.ClosedError):
                await client.request(server.address, Echo(b"x"), 1)
        finally:
            await client.stop()
            await server.stop()

    run(main())


def test_too_large_is_refused_locally(run):
    async def main():
        server, client = await pair()
        try:
            small = Transport(None, max_message_size=4096)
            await small.start()
            try:
                with pytest.raises(errors.TooLarge):
                    await small.request(server.address, Echo(b"x" * 5000), 1)
                with pytest.raises(errors.TooLarge):
                    small.send(server.address, Echo(b"x" * 5000))
            finally:
                await small.stop()
        finally:
            await client.stop()
            await server.stop()

    run(main())


def test_full_queue_to_an_unreachable_peer(run):
    async def main():
        async with Transport("tcp://127.0.0.1:0", Server()) as gone:
            addr = gone.address
        async with Transport(None, max_queue=10) as client:
            for i in range(10):
                assert client.send(addr, Note(i))
            assert not client.send(addr, Note(10))
            assert client.stats.dropped == 1
            with pytest.raises(errors.Unavailable, match="full"):
                await client.request(addr, Echo(b"x"), 1)

    run(main())


def test_oversized_frame_from_a_peer_is_refused_by_zeromq(run):
    async def main():
        server = Transport("tcp://127.0.0.1:0", Server(), max_message_size=64 * 1024)
        await server.start()
        ctx = zmq.asyncio.Context()
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        try:
            raw.connect(server.address)
            await raw.send(b"\x00" * (100 * 1024))
            async with Transport(None) as client:
                assert await client.request(server.address, Echo(b"ok"), 5) == Echo(b"ok")
            assert server.stats.frames_in == 1  # the big frame never reached the node
        finally:
            raw.close(0)
            ctx.term()
            await server.stop()

    run(main())


class RawPeer:
    """A bare DEALER speaking envelopes by hand, for what a Transport would not send."""

    def __init__(self, addr: str) -> None:
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(addr)

    async def send(self, *items) -> None:
        await self.sock.send(msgpack.packb([1, list(items)], use_bin_type=True))

    async def recv(self, timeout: float = 5):
        return decode(await asyncio.wait_for(self.sock.recv(), timeout))

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def test_bad_requests_get_typed_error_replies(run):
    async def main():
        server = Transport("tcp://127.0.0.1:0", Server())
        await server.start()
        raw = RawPeer(server.address)
        try:
            await raw.send([REQUEST, 1, "nobody.knows", None, []])
            (env,) = await raw.recv()
            assert (env.kind, env.request_id) == (ERROR, 1)
            assert isinstance(env.exception(), errors.ProtocolError)
            await raw.send([REQUEST, 2, Echo.TYPE, None, [123]])  # wrong field type
            (env,) = await raw.recv()
            assert (env.kind, env.request_id, env.type) == (ERROR, 2, "protocol")
            await raw.send([REQUEST, 3, Echo.TYPE, None, [b"a"]], [REQUEST, 4, Echo.TYPE, None, "junk"])
            assert {e.request_id: e.kind for e in await raw.recv()} == {3: REPLY, 4: ERROR}
            await raw.send([REQUEST, 5, Echo.TYPE, True, [b"a"]])  # bad frame; id 5 readable
            (env,) = await raw.recv()
            assert (env.kind, env.request_id, env.type) == (ERROR, 5, "protocol")
            await raw.send([REQUEST, 6, Echo.TYPE, 0, [b"expired"]], [REQUEST, 7, Echo.TYPE, 5000, [b"ok"]])
            (env,) = await raw.recv()  # the spent budget is dropped silently
            assert (env.kind, env.request_id, env.message()) == (REPLY, 7, Echo(b"ok"))
            assert server.stats.expired == 1
            await raw.send([REPLY, 8, Echo.TYPE, None, [b"a"]], [ONEWAY, 0, "nobody.knows", None, []])
            await raw.send([REQUEST, 9, Echo.TYPE, None, [b"after"]])
            (env,) = await raw.recv()
            assert env.request_id == 9
            assert server.stats.malformed == 6
        finally:
            raw.close()
            await server.stop()

    run(main())


def test_undecodable_replies_raise_protocol_error(run):
    async def main():
        ctx = zmq.asyncio.Context()
        fake = ctx.socket(zmq.ROUTER)
        fake.setsockopt(zmq.LINGER, 0)
        fake.bind("tcp://127.0.0.1:*")
        addr = fake.getsockopt_string(zmq.LAST_ENDPOINT)

        async def answer(make_reply):
            ident, frame = await fake.recv_multipart()
            (env,) = decode(frame)
            await fake.send_multipart([ident, msgpack.packb([1, [make_reply(env.request_id)]])])

        try:
            async with Transport(None) as client:
                for make in (
                    lambda rid: [REPLY, rid, "nobody.knows", None, []],  # unknown type
                    lambda rid: [REPLY, rid, Echo.TYPE, None, [42]],  # bad body
                    lambda rid: [REPLY, rid, Echo.TYPE, 7, [b"x"]],  # bad frame, id readable
                ):
                    req = asyncio.ensure_future(client.request(addr, Echo(b"q"), 5))
                    await answer(make)
                    with pytest.raises(errors.ProtocolError):
                        await req
                assert client.stats.malformed == 1
        finally:
            fake.close(0)
            ctx.term()

    run(main())


def test_call_local_runs_the_same_path_without_sockets(run):
    async def main():
        handler = Server()
        assert await call_local(handler, Echo(b"x")) == Echo(b"x")
        assert await call_local(handler, Fail("none")) == Ack()
        with pytest.raises(errors.QuorumError) as info:
            await call_local(handler, Fail("quorum"))
        assert info.value.acks == 1
        with pytest.raises(errors.RingKVError, match="ZeroDivisionError"):
            await call_local(handler, Fail("bug"))

    run(main())
