"""Request/response throughput: ringkv's Transport against raw pyzmq.

    python benchmarks/transport.py [--seconds S] [--rounds R] [--size BYTES] [--inflight N] [--profile]

Both contenders run the same shape: an echo server in a subprocess (its own
process and event loop) and an asyncio client here, where each request is an
independent coroutine awaiting its own reply, serially (1 in flight) and with
N in flight. The raw baseline is what an application would write on pyzmq
directly: a zmq.asyncio DEALER, an 8-byte request id in front of the payload,
one future per request (no timeout), a reader task matching replies to
futures; the server a zmq.asyncio ROUTER echoing each message back. The
"raw pipelined" row is the raw ceiling without per-request bookkeeping (one
loop sending a new message for each reply). ringkv's requests carry real
timeouts, typed messages and envelopes.

More sections can be appended to the printout with :func:`add_report`
(e.g. simulated gossip convergence rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import pstats
import subprocess
import sys
import time
from typing import Callable, Iterable

import zmq
import zmq.asyncio

from ringkv import wire
from ringkv.transport import Transport

_REPORTS: list[Callable[[argparse.Namespace], Iterable[str]]] = []


def add_report(fn: Callable[[argparse.Namespace], Iterable[str]]) -> Callable:
    """Register ``fn(args) -> lines``, printed after the throughput table.

    Usable as a decorator; ``args`` are the parsed command-line options.
    """
    _REPORTS.append(fn)
    return fn


@wire.message("benchmarks_transport.echo")
class Echo(wire.Message):
    data: bytes


# ------------------------------------------------------------------ servers


async def _serve_ringkv() -> None:
    async def echo(peer: bytes, msg: wire.Message) -> wire.Message:
        return msg

    async with Transport("tcp://127.0.0.1:0", echo) as t:
        await _announce_and_wait(t.address)


async def _serve_raw() -> None:
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")

    async def echo() -> None:
        while True:
            await sock.send_multipart(await sock.recv_multipart())

    task = asyncio.ensure_future(echo())
    try:
        await _announce_and_wait(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sock.close(0)
        ctx.term()


async def _announce_and_wait(address: str) -> None:
    print(address, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin


# ------------------------------------------------------------------ clients


async def _run_clients(call: Callable, inflight: int, seconds: float) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * inflight

    async def worker(i: int) -> None:
        while time.perf_counter() < stop:
            await call()
            counts[i] += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(inflight)))
    return sum(counts) / (time.perf_counter() - start)


async def bench_ringkv(addr: str, size: int, inflight: int, seconds: float) -> float:
    msg = Echo(os.urandom(size))
    async with Transport(None) as t:
        await t.request(addr, msg, 5.0)  # connect before timing
        return await _run_clients(lambda: t.request(addr, msg, 5.0), inflight, seconds)


async def bench_raw(addr: str, size: int, inflight: int, seconds: float) -> float:
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(addr)
    payload = os.urandom(size)
    waiting: dict[bytes, asyncio.Future] = {}
    ids = itertools.count()
    loop = asyncio.get_running_loop()

    async def reader() -> None:
        while True:
            reply = await sock.recv()
            fut = waiting.pop(reply[:8], None)
            if fut is not None:
                fut.set_result(reply)

    async def call() -> bytes:
        rid = next(ids).to_bytes(8, "big")
        fut = waiting[rid] = loop.create_future()
        await sock.send(rid + payload)
        return await fut

    task = asyncio.ensure_future(reader())
    try:
        await call()
        return await _run_clients(call, inflight, seconds)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sock.close(0)
        ctx.term()


async def bench_raw_pipelined(addr: str, size: int, inflight: int, seconds: float) -> float:
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(addr)
    payload = os.urandom(size + 8)
    try:
        await sock.send(payload)
        await sock.recv()
        for _ in range(inflight):
            await sock.send(payload)
        n, start = 0, time.perf_counter()
        stop = start + seconds
        while time.perf_counter() < stop:
            await sock.recv()
            await sock.send(payload)
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        sock.close(0)
        ctx.term()


# ------------------------------------------------------------------ driver


class _Server:
    def __init__(self, kind: str, profile: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", kind] + ["--profile"] * profile,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.address = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not self.address:
            self.close()
            raise RuntimeError(f"{kind} server did not start")

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(args: argparse.Namespace) -> dict[tuple[str, int], float]:
    """Best of ``--rounds`` per cell; rounds interleave the contenders so that
    load from elsewhere on the machine hits all of them alike."""
    results: dict[tuple[str, int], float] = {}
    servers = {kind: _Server(kind, args.profile and kind == "ringkv") for kind in ("raw", "ringkv")}
    plan = [
        ("raw", "raw", bench_raw),
        ("ringkv", "ringkv", bench_ringkv),
        ("raw pipelined", "raw", bench_raw_pipelined),
    ]
    try:
        for round_ in range(args.rounds):
            for inflight in (1, args.inflight):
                for name, server_kind, bench in plan:
                    profiling = args.profile and name == "ringkv" and inflight > 1 and round_ == 0
                    prof = cProfile.Profile() if profiling else None
                    if prof:
                        prof.enable()
                    rate = asyncio.run(bench(servers[server_kind].address, args.size, inflight, args.seconds))
                    if prof:
                        prof.disable()
                        print("client profile:")
                        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
                    results[name, inflight] = max(rate, results.get((name, inflight), 0.0))
    finally:
        for server in servers.values():
            server.close()
    return results


def print_table(args: argparse.Namespace, results: dict[tuple[str, int], float]) -> None:
    print(
        f"\nround trips/s, {args.size}-byte payload, echo server in a subprocess,"
        f" best of {args.rounds} x {args.seconds:g}s"
    )
    print(f"{'':16}{'serial':>12}{f'{args.inflight} in flight':>16}")
    for name in ("raw", "ringkv", "raw pipelined"):
        print(f"{name:16}{results[name, 1]:>12,.0f}{results[name, args.inflight]:>16,.0f}")
    ratio = {n: results["ringkv", n] / results["raw", n] for n in (1, args.inflight)}
    print(f"{'ringkv / raw':16}{ratio[1]:>12.2f}{ratio[args.inflight]:>16.2f}")
    for fn in _REPORTS:
        for line in fn(args):
            print(line)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement")
    p.add_argument("--rounds", type=int, default=3, help="measurements per cell (the best is kept)")
    p.add_argument("--size", type=int, default=100, help="payload bytes per message")
    p.add_argument("--inflight", type=int, default=64, help="concurrent requests in the second column")
    p.add_argument("--profile", action="store_true", help="cProfile the ringkv client (many in flight) and server")
    p.add_argument("--serve", choices=["ringkv", "raw"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        prof = cProfile.Profile() if args.profile else None
        if prof:
            prof.enable()
        asyncio.run(_serve_ringkv() if args.serve == "ringkv" else _serve_raw())
        if prof:
            prof.disable()
            print("server profile:", file=sys.stderr)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        return
    print_table(args, run(args))


@add_report
def _convergence(args: argparse.Namespace) -> Iterable[str]:
    """Gossip convergence on the simulated network (rounds of one probe period)."""
    import math

    from ringkv.gossip import convergence_rounds

    yield ""
    yield "gossip convergence (simulated, every node seeded by a random earlier one):"
    for n in (10, 100, 1000):
        rounds = convergence_rounds(n, seed=1)
        yield f"  N={n:<5d} {rounds:3d} rounds   (bound 2*log2(N) = {2 * math.log2(n):.1f})"


if __name__ == "__main__":
    main()
