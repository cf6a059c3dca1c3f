"""A live Transport fed 10,000 broken frames by a raw DEALER stays up and counts them."""

from __future__ import annotations

import random

import msgpack
import zmq
import zmq.asyncio

from ringkv import errors, wire
from ringkv.envelope import ERROR, ONEWAY, REPLY, REQUEST, Envelope, decode, encode
from ringkv.transport import Transport


@wire.message("transport_bad_input_test.echo")
class Echo(wire.Message):
    data: bytes
    n: int


async def echo(peer: bytes, msg: wire.Message) -> wire.Message:
    return msg


def _bad_frames(rng: random.Random, count: int) -> list[list[bytes]]:
    """``count`` ZeroMQ messages (lists of parts), every one wrong in some way."""
    valid = [
        encode(Envelope.request(7, Echo(b"abc", 1), budget_ms=1000)),
        encode([Envelope.oneway(Echo(b"x", 2)), Envelope.request(8, Echo(b"y", 3))]),
    ]
    makers = [
        lambda: [rng.randbytes(rng.randrange(0, 200))],
        lambda: [rng.choice(valid)[: rng.randrange(1, len(valid[0]) - 1)]],  # truncated
        lambda: [_mutate(rng, rng.choice(valid))],
        lambda: [_pack([1, [[rng.choice([REQUEST, ONEWAY, 5, True]), rng.choice([1, True, -1, "1", 2**63]),
                             rng.choice([Echo.TYPE, 5, b"t"]), rng.choice([None, True, -1, 1.5]), []]]])],
        lambda: [b"\x92\x01\xdd" + rng.randbytes(4)],  # huge array length
        lambda: [b"\x92\x01\x91\x95\x00\x01\xa1t\xc0\xc6\x7f\xff\xff\xff"],  # huge bin length
        lambda: [b"\x92\x01" + b"\x91" * rng.randrange(1000, 5000)],  # depth bomb
        lambda: [_pack([1, [[REQUEST, rng.randrange(1, 2**32), "no.such.type", None, []]]])],
        lambda: [_pack([1, [[REQUEST, rng.randrange(1, 2**32), Echo.TYPE, None,
                             rng.choice([[1, 2], [b"a"], "x", None])]]])],  # invalid body
        lambda: [_pack([rng.choice([0, 2, 99]), [[REQUEST, 1, Echo.TYPE, None, [b"a", 1]]]])],  # unknown version
        lambda: [_pack([1, [[REPLY, 3, Echo.TYPE, None, [b"a", 1]]]])],  # replies do not go to a ROUTER
        lambda: [b"", b"two parts"],
    ]
    return [rng.choice(makers)() for _ in range(count)]


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    buf = bytearray(frame)
    for _ in range(rng.randrange(1, 4)):
        pos = rng.randrange(len(buf))
        buf[pos] = rng.randrange(256)
    return bytes(buf)


def _is_bad(parts: list[bytes]) -> bool:
    """Whether the node must count this message as malformed (per the sans-IO decoder)."""
    if len(parts) != 1:
        return True
    try:
        envs = decode(parts[0])
    except errors.ProtocolError:
        return True
    for env in envs:
        if env.kind in (REPLY, ERROR):
            return True
        if env.budget_ms != 0:
            try:
                env.message()
            except errors.ProtocolError:
                return True
    return False


def test_ten_thousand_bad_frames(run):
    rng = random.Random(20240601)
    frames = _bad_frames(rng, 10_000)
    must_count = sum(map(_is_bad, frames))
    assert must_count > 9_000  # a few mutations may come out valid; those are just served

    async def main():
        server = Transport("tcp://127.0.0.1:0", echo)
        await server.start()
        ctx = zmq.asyncio.Context()
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        try:
            raw.connect(server.address)
            for parts in frames:
                await raw.send_multipart(parts)
            # a last valid request on the same connection: once it is answered, all
            # frames before it have been read (ZeroMQ keeps order per connection)
            await raw.send(encode(Envelope.request(2**40, Echo(b"last", 0))))
            while True:
                envs = decode(await raw.recv())
                if any(e.request_id == 2**40 for e in envs):
                    break
            assert server.stats.frames_in == len(frames) + 1
            assert server.stats.malformed >= must_count
            async with Transport(None) as client:
                assert await client.request(server.address, Echo(b"ok", 1), 5) == Echo(b"ok", 1)
        finally:
            raw.close(0)
            ctx.term()
            await server.stop()

    run(main(), timeout=60)
