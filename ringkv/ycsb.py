"""YCSB-style benchmark harness (``ringkv bench``, ``benchmarks/ycsb.py``).

Workloads, after a load phase that inserts ``--records`` records:

* ``A`` 50% read, 50% update;  ``B`` 95% read, 5% update;  ``C`` 100% read;
* ``F`` 50% read, 50% read-modify-write (a get, then a put carrying that
  get's causal context);
* ``feed`` appends to ``--feeds`` feeds for ``--duration``, then reads pages
  of ``--scan-length`` entries from random positions of those feeds.

Keys are ``user`` + 12 digits, chosen uniformly or by a scrambled zipfian
distribution (YCSB's default, theta 0.99: a few hot keys spread over the key
space). Targets: an embedded database (``--data-dir DIR`` or, by default, a
temporary directory), an in-process ``ringkv.Node`` (``--node``), a running
cluster (``--connect ADDR``) or a cluster of local ``ringkv serve``
processes started for the run (``--local-cluster 3``: keyspace N=3 R=2 W=2).

Baselines run in the same process, on the same operation and key sequences,
interleaved with ringkv workload by workload: raw rocksdict for the embedded
target (synchronous calls, one at a time, as the embedded database); for the
other targets redis-server driven by ``redis.asyncio`` with the same number
of requests in flight, and raw pyzmq DEALER/ROUTER round trips (the transport
floor: an echo server in a subprocess, one future per request).

Prints a table of ops/s and p50/p95/p99 latency per operation with the
ringkv / baseline ratio; ``--json PATH`` writes every figure, ``--plot PATH``
a PNG (matplotlib). Every process and temporary directory it starts is
removed at the end, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Sequence

from ringkv.benchtools import (
    LocalCluster,
    RedisServer,
    ensure_redis,
    environment,
    fmt,
    interrupt_on_signals,
    machine_busy,
    process_cpu,
    read_line,
    redis_available,
    spawn,
    stop_process,
    tail,
    wait_converged,
    write_json,
)

__all__ = [
    "build_parser",
    "main",
    "run",
    "LocalCluster",
    "RedisServer",
    "ZmqEcho",
    "Zipfian",
    "PhaseResult",
    "drive_async",
    "drive_sync",
    "wait_converged",
    "environment",
    "percentile",
    "redis_available",
    "ensure_redis",
]

KEYSPACE = "ycsb"
WORKLOADS = ("A", "B", "C", "F", "feed")
#: operation codes; index into the per-system tables of callables
OPS = ("read", "update", "rmw", "insert", "append", "iterate", "roundtrip")
READ, UPDATE, RMW, INSERT, APPEND, ITERATE, ROUNDTRIP = range(len(OPS))
OP_LABEL = {"read": "read", "update": "update", "rmw": "read-modify-write", "insert": "insert",
            "append": "append", "iterate": "iterate", "roundtrip": "round trip"}
#: operation mix of each key-value workload: (op, proportion)
MIXES: dict[str, tuple[tuple[int, float], ...]] = {
    "A": ((READ, 0.5), (UPDATE, 0.5)),
    "B": ((READ, 0.95), (UPDATE, 0.05)),
    "C": ((READ, 1.0),),
    "F": ((READ, 0.5), (RMW, 0.5)),
}


def op_table(**ops: Callable) -> list[Optional[Callable]]:
    """A table of callables indexed by op code, from ``name=fn`` (names from :data:`OPS`); None for the others."""
    table: list[Optional[Callable]] = [None] * len(OPS)
    for name, fn in ops.items():
        table[OPS.index(name)] = fn
    return table


_SEQ_LEN = 1 << 17  # pre-drawn operations per phase, reused cyclically
_VALUES = 256  # distinct values per run, reused cyclically


# ---------------------------------------------------------------- key choice


class Zipfian:
    """YCSB's zipfian generator (Gray et al.) over ``0..n-1``, scrambled.

    Item ``i`` has popularity ~ 1/(i+1)^theta; ``scramble`` maps popularity
    ranks to items through a fixed random permutation, so the hot items are
    spread over the key space (YCSB's ScrambledZipfianGenerator).
    """

    def __init__(self, n: int, rng: random.Random, theta: float = 0.99, scramble: bool = True) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n, self.theta, self.rng = n, theta, rng
        self.zetan = sum(1.0 / (i ** theta) for i in range(1, n + 1))
        self.alpha = 1.0 / (1.0 - theta)
        zeta2 = 1.0 + 0.5 ** theta
        self.half_pow = 0.5 ** theta
        self.eta = (1 - (2.0 / n) ** (1 - theta)) / (1 - zeta2 / self.zetan) if n > 1 else 0.0
        self.perm: Optional[list[int]] = None
        if scramble:
            self.perm = list(range(n))
            random.Random(rng.random()).shuffle(self.perm)

    def next(self) -> int:
        u = self.rng.random()
        uz = u * self.zetan
        if uz < 1.0 or self.n == 1:
            rank = 0
        elif uz < 1.0 + self.half_pow:
            rank = 1
        else:
            rank = min(self.n - 1, int(self.n * (self.eta * u - self.eta + 1) ** self.alpha))
        return self.perm[rank] if self.perm is not None else rank


def record_key(i: int) -> bytes:
    return b"user%012d" % i


@dataclass
class OpSequence:
    """Pre-drawn operations of one phase: op codes and their arguments."""

    codes: list[int]
    args: list[int]


def draw_phase(mix: Sequence[tuple[int, float]], records: int, distribution: str, seed: int, length: int = _SEQ_LEN) -> OpSequence:
    """``length`` (op, record index) draws for a key-value phase."""
    rng = random.Random(seed)
    ops = [op for op, _ in mix]
    cum = list(itertools.accumulate(p for _, p in mix))
    codes = [ops[min(len(ops) - 1, bisect.bisect_right(cum, rng.random() * cum[-1]))] for _ in range(length)]
    if distribution == "zipfian":
        z = Zipfian(records, rng)
        args = [z.next() for _ in range(length)]
    else:
        args = [rng.randrange(records) for _ in range(length)]
    return OpSequence(codes, args)


def single_op(op: int, seed: int, length: int = _SEQ_LEN, modulo: int = 1 << 30) -> OpSequence:
    rng = random.Random(seed)
    return OpSequence([op] * length, [rng.randrange(modulo) for _ in range(length)])


# ---------------------------------------------------------------- results


def percentile(sorted_values: Sequence[float], p: float) -> Optional[float]:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


@dataclass
class PhaseResult:
    """What one system did in one phase: per operation counts and latencies (seconds)."""

    seconds: float = 0.0
    lat: list[list[float]] = field(default_factory=lambda: [[] for _ in OPS])
    items: list[int] = field(default_factory=lambda: [0] * len(OPS))
    errors: collections.Counter = field(default_factory=collections.Counter)
    client_cpu: float = 0.0
    machine_cpu: Optional[float] = None
    #: CPU-seconds per second of the server processes (nodes, redis-server), when known
    server_cpu: Optional[float] = None
    #: CPU-seconds per second of the other contenders' servers meanwhile (e.g. idle nodes' background work)
    idle_servers_cpu: Optional[float] = None

    @property
    def ops(self) -> int:
        return sum(len(x) for x in self.lat)

    def summary(self) -> dict[str, dict]:
        """``{op name: {...}}`` for every op that ran, plus ``all`` for a mix."""
        out: dict[str, dict] = {}
        ran = [i for i, x in enumerate(self.lat) if x]
        groups = [(OPS[i], [i]) for i in ran]
        if len(ran) > 1:
            groups.append(("all", ran))
        for name, idx in groups:
            lat = sorted(itertools.chain.from_iterable(self.lat[i] for i in idx))
            n = len(lat)
            items = sum(self.items[i] for i in idx)
            out[name] = {
                "ops": n,
                "ops_per_sec": n / self.seconds if self.seconds > 0 else 0.0,
                "items_per_sec": items / self.seconds if items and self.seconds > 0 else None,
                "mean_ms": sum(lat) / n * 1e3 if n else None,
                "p50_ms": _ms(percentile(lat, 0.50)),
                "p95_ms": _ms(percentile(lat, 0.95)),
                "p99_ms": _ms(percentile(lat, 0.99)),
                "max_ms": _ms(lat[-1] if lat else None),
            }
        return out

    def as_dict(self) -> dict:
        return {
            "seconds": self.seconds,
            "ops": self.ops,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors.most_common(5)),
            "client_cpu_util": self.client_cpu / self.seconds if self.seconds > 0 else None,
            "server_cpu_util": self.server_cpu,
            "idle_servers_cpu_util": self.idle_servers_cpu,
            "machine_cpu_util": self.machine_cpu,
            #: CPU-seconds per second used meanwhile by every other process on the machine
            "other_cpu_util": None if self.machine_cpu is None else max(
                0.0, self.machine_cpu - (self.server_cpu or 0.0) - (self.idle_servers_cpu or 0.0)
                - (self.client_cpu / self.seconds if self.seconds > 0 else 0.0)),
            "by_op": self.summary(),
        }


def _ms(v: Optional[float]) -> Optional[float]:
    return None if v is None else v * 1e3


def _error_name(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:120]


# ---------------------------------------------------------------- drivers

Progress = Callable[[float], None]  # called with the fraction done


def drive_sync(fns: Sequence[Optional[Callable]], seq: OpSequence, values: Sequence[bytes], seconds: float,
               max_ops: Optional[int], progress: Optional[Progress] = None) -> PhaseResult:
    """Run ``fns[code](arg, value)`` one at a time for ``seconds`` (or ``max_ops``)."""
    res = PhaseResult()
    lat, items, errors = res.lat, res.items, res.errors
    codes, args, n = seq.codes, seq.args, len(seq.codes)
    limit = max_ops if max_ops is not None else 1 << 62
    pc = time.perf_counter
    cpu0, busy0 = time.process_time(), machine_busy()
    start = pc()
    stop = start + seconds
    j = 0
    while j < limit:
        if not j & 255:
            now = pc()
            if now >= stop:
                break
            if progress is not None and not j & 4095:
                progress(max((now - start) / seconds, j / limit))
        c = codes[j % n]
        t0 = pc()
        try:
            got = fns[c](args[j % n], values[j & (_VALUES - 1)])  # type: ignore[misc]
        except Exception as exc:
            errors[_error_name(exc)] += 1
            j += 1
            continue
        lat[c].append(pc() - t0)
        if got:
            items[c] += got
        j += 1
    res.seconds = pc() - start
    res.client_cpu = time.process_time() - cpu0
    busy1 = machine_busy()
    res.machine_cpu = None if busy0 is None or busy1 is None else (busy1 - busy0) / res.seconds
    return res


async def drive_async(fns: Sequence[Optional[Callable[..., Awaitable]]], seq: OpSequence, values: Sequence[bytes],
                      seconds: float, max_ops: Optional[int], concurrency: int,
                      progress: Optional[Progress] = None, pids: Sequence[int] = (),
                      other_pids: Sequence[int] = ()) -> PhaseResult:
    """``concurrency`` coroutines each awaiting ``fns[code](arg, value)`` in turn."""
    res = PhaseResult()
    lat, items, errors = res.lat, res.items, res.errors
    codes, args, n = seq.codes, seq.args, len(seq.codes)
    limit = max_ops if max_ops is not None else 1 << 62
    counter = itertools.count()
    pc = time.perf_counter
    start = pc()
    stop = start + seconds

    async def worker() -> None:
        while True:
            j = next(counter)
            if j >= limit:
                return
            t0 = pc()
            if t0 >= stop:
                return
            c = codes[j % n]
            try:
                got = await fns[c](args[j % n], values[j & (_VALUES - 1)])  # type: ignore[misc]
            except Exception as exc:  # counted and shown; the run goes on
                errors[_error_name(exc)] += 1
                continue
            lat[c].append(pc() - t0)
            if got:
                items[c] += got

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.2)  # progress display refresh
            if progress is not None:
                progress(max((pc() - start) / seconds, res.ops / limit))

    cpu0, busy0, srv0, oth0 = time.process_time(), machine_busy(), process_cpu(pids), process_cpu(other_pids)
    tick = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)
    res.seconds = pc() - start
    res.client_cpu = time.process_time() - cpu0
    busy1, srv1, oth1 = machine_busy(), process_cpu(pids), process_cpu(other_pids)
    res.machine_cpu = None if busy0 is None or busy1 is None else (busy1 - busy0) / res.seconds
    res.server_cpu = None if srv0 is None or srv1 is None else (srv1 - srv0) / res.seconds
    res.idle_servers_cpu = None if oth0 is None or oth1 is None else (oth1 - oth0) / res.seconds
    return res


# ---------------------------------------------------------------- systems


class _FeedIds:
    """Ids of the entries a system appended, per feed, to start page reads from."""

    def __init__(self, feeds: int) -> None:
        self.ids: list[list[Any]] = [[] for _ in range(feeds)]

    def start(self, arg: int, scan: int) -> tuple[int, Any]:
        f = arg % len(self.ids)
        ids = self.ids[f]
        if not ids:
            return f, None
        room = max(1, len(ids) - scan)  # start early enough to read a full page when possible
        return f, ids[(arg // len(self.ids)) % room]


class System:
    """One contender: a name, a table of operations, open/close."""

    name = "?"
    is_async = False
    #: server processes whose CPU time is measured with each phase
    pids: Sequence[int] = ()

    def fns(self) -> list[Optional[Callable]]:
        table: list[Optional[Callable]] = [None] * len(OPS)
        for i, op in enumerate(OPS):
            table[i] = getattr(self, op, None)
        return table


class EmbeddedRingkv(System):
    name = "ringkv"

    def __init__(self, db: Any, keys: list[bytes], feeds: int, scan: int, run_id: str) -> None:
        self.db = db
        try:
            db.keyspace_create(KEYSPACE)
        except Exception as exc:  # AlreadyExists on a reused directory
            if type(exc).__name__ != "AlreadyExists":
                raise
        self.ks = db.keyspace(KEYSPACE)
        self.keys, self.scan = keys, scan
        self.feeds = [self.ks.feed(f"{run_id}-{i}") for i in range(feeds)]
        self.feed_ids = _FeedIds(feeds)
        self._get, self._put = self.ks.get, self.ks.put

    def read(self, i: int, _v: bytes) -> None:
        if self._get(self.keys[i]) is None:
            raise LookupError("key missing")

    def update(self, i: int, v: bytes) -> None:
        self._put(self.keys[i], v)

    insert = update

    def rmw(self, i: int, v: bytes) -> None:
        k = self.keys[i]
        res = self._get(k)
        self._put(k, v, res.context if res is not None else None)

    def append(self, arg: int, v: bytes) -> None:
        f = arg % len(self.feeds)
        self.feed_ids.ids[f].append(self.feeds[f].append(v))

    def iterate(self, arg: int, _v: bytes) -> int:
        f, start = self.feed_ids.start(arg, self.scan)
        n = 0
        for _ in self.feeds[f].iterate(start, limit=self.scan):
            n += 1
        return n


class RawRocks(System):
    """rocksdict in raw mode with default options: what an application would write directly."""

    name = "rocksdict"

    def __init__(self, path: str, keys: list[bytes], feeds: int, scan: int) -> None:
        from rocksdict import Options, Rdict

        self.db = Rdict(path, Options(raw_mode=True))
        self.keys, self.scan = keys, scan
        self.prefixes = [b"feed%04d" % i for i in range(feeds)]
        self.seqs = [0] * feeds
        self.feed_ids = _FeedIds(feeds)

    def close(self) -> None:
        self.db.close()

    def read(self, i: int, _v: bytes) -> None:
        if self.db.get(self.keys[i]) is None:
            raise LookupError("key missing")

    def update(self, i: int, v: bytes) -> None:
        self.db[self.keys[i]] = v

    insert = update

    def rmw(self, i: int, v: bytes) -> None:
        k = self.keys[i]
        self.db.get(k)
        self.db[k] = v

    def append(self, arg: int, v: bytes) -> None:
        f = arg % len(self.prefixes)
        self.seqs[f] += 1
        k = self.prefixes[f] + self.seqs[f].to_bytes(8, "big")
        self.db[k] = v
        self.feed_ids.ids[f].append(k)

    def iterate(self, arg: int, _v: bytes) -> int:
        f, start = self.feed_ids.start(arg, self.scan)
        prefix = self.prefixes[f]
        n = 0
        for k, _ in self.db.items(from_key=(start + b"\0") if start is not None else prefix):
            if not k.startswith(prefix) or n >= self.scan:
                break
            n += 1
        return n


class ClusterRingkv(System):
    """A cluster (or an in-process node) through ``AsyncClient``."""

    name = "ringkv"
    is_async = True

    def __init__(self, client: Any, keys: list[bytes], feeds: int, scan: int, run_id: str) -> None:
        self.client = client
        self.ks = client.keyspace(KEYSPACE)
        self.keys, self.scan = keys, scan
        self.feeds = [self.ks.feed(f"{run_id}-{i}") for i in range(feeds)]
        self.feed_ids = _FeedIds(feeds)
        self._get, self._put = self.ks.aget, self.ks.aput

    async def read(self, i: int, _v: bytes) -> None:
        if await self._get(self.keys[i]) is None:
            raise LookupError("key missing")

    async def update(self, i: int, v: bytes) -> None:
        await self._put(self.keys[i], v)

    insert = update

    async def rmw(self, i: int, v: bytes) -> None:
        k = self.keys[i]
        res = await self._get(k)
        await self._put(k, v, res.context if res is not None else None)

    async def append(self, arg: int, v: bytes) -> None:
        f = arg % len(self.feeds)
        self.feed_ids.ids[f].append(await self.feeds[f].aappend(v))

    async def iterate(self, arg: int, _v: bytes) -> int:
        f, start = self.feed_ids.start(arg, self.scan)
        n = 0
        async for _ in self.feeds[f].aiterate(start, limit=self.scan):
            n += 1
        return n


class RedisBaseline(System):
    """redis-server through redis.asyncio: GET / SET, feeds as streams (XADD / XRANGE)."""

    name = "redis"
    is_async = True

    def __init__(self, port: int, keys: list[bytes], feeds: int, scan: int, run_id: str, concurrency: int) -> None:
        import redis.asyncio as aredis

        self.r = aredis.Redis(host="127.0.0.1", port=port, max_connections=concurrency + 8, socket_timeout=10)
        self.keys, self.scan = keys, scan
        self.streams = [f"{run_id}-{i}".encode() for i in range(feeds)]
        self.feed_ids = _FeedIds(feeds)

    async def open(self) -> None:
        await self.r.ping()

    async def aclose(self) -> None:
        await self.r.aclose()

    async def read(self, i: int, _v: bytes) -> None:
        if await self.r.get(self.keys[i]) is None:
            raise LookupError("key missing")

    async def update(self, i: int, v: bytes) -> None:
        await self.r.set(self.keys[i], v)

    insert = update

    async def rmw(self, i: int, v: bytes) -> None:
        k = self.keys[i]
        await self.r.get(k)
        await self.r.set(k, v)

    async def append(self, arg: int, v: bytes) -> None:
        f = arg % len(self.streams)
        self.feed_ids.ids[f].append(await self.r.xadd(self.streams[f], {b"d": v}))

    async def iterate(self, arg: int, _v: bytes) -> int:
        f, start = self.feed_ids.start(arg, self.scan)
        lo = b"-" if start is None else b"(" + (start if isinstance(start, bytes) else str(start).encode())
        return len(await self.r.xrange(self.streams[f], lo, b"+", count=self.scan))


class ZmqFloor(System):
    """Raw pyzmq: a DEALER, an 8-byte request id before the payload, one future per request."""

    name = "pyzmq"
    is_async = True

    def __init__(self, addr: str, payload_size: int) -> None:
        import zmq
        import zmq.asyncio

        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(addr)
        self.payload = os.urandom(payload_size)
        self.waiting: dict[bytes, asyncio.Future] = {}
        self.ids = itertools.count()
        self._reader: Optional[asyncio.Task] = None

    async def open(self) -> None:
        self._reader = asyncio.ensure_future(self._read())
        await self.roundtrip(0, b"")

    async def _read(self) -> None:
        while True:
            reply = await self.sock.recv()
            fut = self.waiting.pop(reply[:8], None)
            if fut is not None and not fut.done():
                fut.set_result(reply)

    async def roundtrip(self, _arg: int, _v: bytes) -> None:
        rid = next(self.ids).to_bytes(8, "big")
        fut = self.waiting[rid] = asyncio.get_running_loop().create_future()
        await self.sock.send(rid + self.payload)
        await fut

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        self.sock.close(0)
        self.ctx.term()


# ---------------------------------------------------------------- the pyzmq floor's server


_ECHO_SERVER = """
import asyncio, sys, zmq, zmq.asyncio
async def main():
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    async def echo():
        while True:
            await sock.send_multipart(await sock.recv_multipart())
    task = asyncio.ensure_future(echo())
    print(sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    task.cancel()
    sock.close(0)
    ctx.term()
asyncio.run(main())
"""


class ZmqEcho:
    """A zmq.asyncio ROUTER echo server in a subprocess (as ``benchmarks/transport.py``'s raw server)."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None
        self.addr = ""

    def start(self) -> "ZmqEcho":
        log = os.path.join(self.workdir, "zmq-echo.log")
        self.proc = spawn([sys.executable, "-c", _ECHO_SERVER], log, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        self.addr = read_line(self.proc, 20.0)
        if not self.addr:
            self.stop()
            raise RuntimeError(f"the pyzmq echo server did not start: {tail(log)}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 5.0)


# ---------------------------------------------------------------- the run


@dataclass
class Phase:
    workload: str
    seq: OpSequence
    #: feed phases run on every system even with no records loaded
    feed: bool = False


def _phases(args: argparse.Namespace, workloads: list[str]) -> list[Phase]:
    out = []
    kv = [w for w in workloads if w != "feed"]
    if kv:
        out.append(Phase("load", OpSequence([INSERT] * args.records, list(range(args.records)))))
    length = min(_SEQ_LEN, args.ops) if args.ops else _SEQ_LEN
    for k, w in enumerate(workloads):
        seed = args.seed * 1000 + k
        if w == "feed":
            out.append(Phase("feed", single_op(APPEND, seed, length, modulo=args.feeds), feed=True))
            out.append(Phase("feed", single_op(ITERATE, seed + 500, length), feed=True))
        else:
            out.append(Phase(w, draw_phase(MIXES[w], args.records, args.distribution, seed, length)))
    return out


class _Display:
    """A rich progress bar on stderr (a line per phase when stderr is not a terminal)."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=self.console, disable=not self.live,
        )

    def __enter__(self) -> "_Display":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def task(self, label: str) -> tuple[Callable[[float], None], Callable[[PhaseResult], None]]:
        tid = self.progress.add_task(label, total=1.0, note="")

        def update(frac: float) -> None:
            self.progress.update(tid, completed=min(1.0, frac))

        def done(res: PhaseResult) -> None:
            rate = res.ops / res.seconds if res.seconds > 0 else 0.0
            note = f"{rate:,.0f} ops/s" + (f", {sum(res.errors.values())} errors" if res.errors else "")
            self.progress.update(tid, completed=1.0, note=note)
            if not self.live and not self.quiet:
                self.console.print(f"{label:<28} {note}", highlight=False)

        return update, done

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)


def _target_kind(args: argparse.Namespace) -> str:
    chosen = [k for k in ("data_dir", "connect", "local_cluster", "node") if getattr(args, k, None)]
    if len(chosen) > 1:
        raise _Usage("choose one target: --data-dir, --node, --connect or --local-cluster")
    return {"data_dir": "embedded", "connect": "cluster", "local_cluster": "local-cluster", "node": "node"}.get(chosen[0] if chosen else "", "embedded")


class _Usage(Exception):
    pass


def _parse_workloads(text: str) -> list[str]:
    out = []
    for w in (x.strip() for x in text.split(",")):
        if not w:
            continue
        name = "feed" if w.lower() in ("feed", "feeds") else w.upper()
        if name not in WORKLOADS:
            raise _Usage(f"unknown workload {w!r}: choose from {', '.join(WORKLOADS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise _Usage("no workload given")
    return out


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed arguments describe; returns an exit status."""
    for name, default in (("data_dir", None), ("node", False), ("connect", None), ("local_cluster", None), ("timeout", 10.0)):
        if getattr(args, name, None) is None:
            setattr(args, name, default)
    try:
        kind = _target_kind(args)
        workloads = _parse_workloads(args.workloads)
        if min(args.records, args.concurrency, args.feeds, args.scan_length, args.rounds) < 1 or args.duration <= 0 or args.value_size < 0:
            raise _Usage("--records, --concurrency, --feeds, --scan-length, --rounds must be >= 1, --duration > 0, --value-size >= 0")
        if args.ops is not None and args.ops < 1:
            raise _Usage("--ops must be >= 1")
        if args.local_cluster is not None and args.local_cluster < 1:
            raise _Usage("--local-cluster must be >= 1")
    except _Usage as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2

    old = interrupt_on_signals() if _in_main_thread() else {}
    workdir = tempfile.mkdtemp(prefix="ringkv-bench-")
    cleanup: list[Callable[[], None]] = []
    display = _Display(args.quiet)
    try:
        with display:
            doc = _run(args, kind, workloads, workdir, cleanup, display)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; cleaning up\n")
        return 130
    except Exception as exc:
        if os.environ.get("RINGKV_DEBUG"):
            raise
        sys.stderr.write(f"error: {type(exc).__name__}: {' '.join(str(exc).split())}\n")
        return 3
    finally:
        for fn in reversed(cleanup):
            with contextlib.suppress(Exception):
                fn()
        shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in old.items():
            signal.signal(sig, handler)
    print_report(doc)
    if args.json:
        write_json(doc, args.json)
    if args.plot:
        try:
            plot(doc, args.plot)
            print(f"plot written to {args.plot}")
        except ImportError:
            sys.stderr.write("no plot: matplotlib is not installed (pip install -e '.[bench]')\n")
    return 0


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _run(args: argparse.Namespace, kind: str, workloads: list[str], workdir: str,
         cleanup: list[Callable[[], None]], display: _Display) -> dict:
    import ringkv

    rng = random.Random(args.seed)
    keys = [record_key(i) for i in range(args.records)]
    values = [rng.randbytes(args.value_size) for _ in range(_VALUES)]
    phases = _phases(args, workloads)
    run_id = f"ycsb-{os.getpid()}-{int(time.time())}"
    baselines_note: list[str] = []
    target: dict[str, Any] = {"kind": kind}
    results: list[dict] = []
    floor: Optional[dict] = None

    if kind == "embedded":
        path = args.data_dir or os.path.join(workdir, "ringkv")
        target["path"] = args.data_dir or "(temporary directory)"
        db = ringkv.open(path)
        cleanup.append(db.close)
        systems: list[System] = [EmbeddedRingkv(db, keys, args.feeds, args.scan_length, run_id)]
        if args.baselines:
            raw = RawRocks(os.path.join(workdir, "rocksdict"), keys, args.feeds, args.scan_length)
            cleanup.append(raw.close)
            systems.append(raw)
        target["concurrency"] = 1
        for round_ in range(args.rounds):
            for ph in phases:
                if ph.workload == "load" and round_:
                    continue
                for res in _run_phase_sync(systems, ph, values, args, display):
                    results.append({**res, "round": round_ + 1})
        return _doc(args, target, workloads, results, floor, baselines_note)

    # network targets: everything on one asyncio loop
    redis_srv: Optional[RedisServer] = None
    echo: Optional[ZmqEcho] = None
    cluster: Optional[LocalCluster] = None
    if kind == "local-cluster":
        display.note(f"starting {args.local_cluster} ringkv serve processes in {workdir} ...")
        cluster = LocalCluster(workdir)
        cleanup.append(cluster.stop)
        cluster.start(args.local_cluster)
        target["nodes"] = args.local_cluster
    if args.baselines:
        ok, why = ensure_redis(args.setup_redis)
        if ok:
            redis_srv = RedisServer(workdir)
            cleanup.append(redis_srv.stop)
            redis_srv.start()
        else:
            baselines_note.append(f"redis baseline skipped: {why}")
            display.note(f"redis baseline skipped: {why}")
        echo = ZmqEcho(workdir)
        cleanup.append(echo.stop)
        echo.start()

    async def go() -> tuple[list[dict], Optional[dict]]:
        out: list[dict] = []
        closers: list[Callable[[], Awaitable[None]]] = []
        node = None
        try:
            if kind == "node":
                node = ringkv.Node(os.path.join(workdir, "node"), listen="tcp://127.0.0.1:0")
                await node.astart()
                closers.append(node.astop)
                client = await node.aclient(timeout=args.timeout)
                closers.insert(0, client.aclose)
                n, r, w = 1, 1, 1
                target["node"] = node.address
            else:
                addrs = cluster.addrs if cluster is not None else [a.strip() for a in args.connect.split(",") if a.strip()]
                client = await ringkv.connect_async(addrs, timeout=args.timeout)
                closers.insert(0, client.aclose)
                if cluster is not None:
                    display.note("waiting for the nodes to see each other up ...")
                    await wait_converged(client, addrs)
                size = len(client.ring()) or 1
                n = min(args.n, size)
                r, w = min(args.r, n), min(args.w, n)
                target["addrs"] = addrs
            try:
                await client.akeyspace_create(KEYSPACE, n=n, r=r, w=w)
                target["keyspace"] = {"name": KEYSPACE, "n": n, "r": r, "w": w}
            except ringkv.errors.AlreadyExists:
                infos = {k.name: k for k in await client.akeyspaces()}
                ks = infos.get(KEYSPACE)
                target["keyspace"] = {"name": KEYSPACE, "n": ks.n, "r": ks.r, "w": ks.w} if ks else {"name": KEYSPACE}
            target["concurrency"] = args.concurrency
            systems = [ClusterRingkv(client, keys, args.feeds, args.scan_length, run_id)]
            if cluster is not None:
                systems[0].pids = cluster.pids
            if redis_srv is not None:
                red = RedisBaseline(redis_srv.port, keys, args.feeds, args.scan_length, run_id, args.concurrency)
                red.pids = redis_srv.pids
                await red.open()
                closers.insert(0, red.aclose)
                systems.append(red)
            for round_ in range(args.rounds):
                for ph in phases:
                    if ph.workload == "load" and round_:
                        continue
                    if cluster is not None:
                        cluster.check_alive()
                    for res in await _run_phase_async(systems, ph, values, args, display):
                        out.append({**res, "round": round_ + 1})
            flo = None
            if echo is not None:
                zf = ZmqFloor(echo.addr, args.value_size)
                await zf.open()
                closers.insert(0, zf.aclose)
                upd, done = display.task("floor: pyzmq round trip")
                res = await drive_async(zf.fns(), single_op(ROUNDTRIP, args.seed), values, args.duration, args.ops, args.concurrency, upd)
                done(res)
                flo = {"system": "pyzmq", "workload": "floor", **res.as_dict()}
            return out, flo
        finally:
            for close in closers:
                with contextlib.suppress(Exception):
                    await close()

    results, floor = asyncio.run(go())
    return _doc(args, target, workloads, results, floor, baselines_note)


def _phase_plan(ph: Phase, args: argparse.Namespace) -> tuple[Optional[int], float, str]:
    """A phase's operation limit, time limit and progress label (a load phase runs to its end)."""
    max_ops = len(ph.seq.codes) if ph.workload == "load" else args.ops
    seconds = 1e9 if ph.workload == "load" else args.duration
    return max_ops, seconds, f"{ph.workload} {OPS[ph.seq.codes[0]] if ph.feed else ''}".strip()


def _run_phase_sync(systems: list[System], ph: Phase, values: list[bytes], args: argparse.Namespace, display: _Display) -> list[dict]:
    out = []
    max_ops, seconds, label = _phase_plan(ph, args)
    for s in systems:
        upd, done = display.task(f"{label}: {s.name}")
        res = drive_sync(s.fns(), ph.seq, values, seconds, max_ops, upd)
        done(res)
        out.append({"system": s.name, "workload": ph.workload, **res.as_dict()})
    return out


async def _run_phase_async(systems: list[System], ph: Phase, values: list[bytes], args: argparse.Namespace, display: _Display) -> list[dict]:
    out = []
    max_ops, seconds, label = _phase_plan(ph, args)
    for s in systems:
        upd, done = display.task(f"{label}: {s.name}")
        others = [p for o in systems if o is not s for p in o.pids]
        res = await drive_async(s.fns(), ph.seq, values, seconds, max_ops, args.concurrency, upd, s.pids, others)
        done(res)
        out.append({"system": s.name, "workload": ph.workload, **res.as_dict()})
    return out


def best_rounds(results: list[dict]) -> list[dict]:
    """Per (system, workload, phase), the round with the highest throughput (first-seen order)."""
    best: dict[tuple, dict] = {}
    for r in results:
        cell = (r["system"], r["workload"], tuple(sorted(r["by_op"])))
        if cell not in best or r["ops"] / max(1e-9, r["seconds"]) > best[cell]["ops"] / max(1e-9, best[cell]["seconds"]):
            best[cell] = r
    return list(best.values())


def _doc(args: argparse.Namespace, target: dict, workloads: list[str], results: list[dict], floor: Optional[dict], notes: list[str]) -> dict:
    every = results
    results = best_rounds(results)
    return {
        "benchmark": "ycsb",
        "params": {
            "workloads": workloads, "records": args.records, "value_size": args.value_size,
            "concurrency": target.get("concurrency", args.concurrency), "duration_s": args.duration, "max_ops": args.ops,
            "distribution": args.distribution, "feeds": args.feeds, "scan_length": args.scan_length, "seed": args.seed,
            "rounds": args.rounds,
        },
        "target": target,
        #: the best round of each (system, workload, phase); ``all_rounds`` has every one
        "results": results,
        "all_rounds": every,
        "floor": floor,
        "rows": table_rows(results, floor),
        "notes": notes,
        "env": environment(),
    }


def table_rows(results: list[dict], floor: Optional[dict]) -> list[dict]:
    """One row per (workload, op): ringkv's figures, the baseline's, their ratio."""
    by: dict[tuple[str, str], dict[str, dict]] = {}
    order: list[tuple[str, str]] = []
    for r in results:
        for op, fig in r["by_op"].items():
            cell = (r["workload"], op)
            if cell not in by:
                by[cell] = {}
                order.append(cell)
            by[cell][r["system"]] = {**fig, "errors": r["errors"]}
    floor_rate = None
    if floor is not None and floor["by_op"].get("roundtrip"):
        floor_rate = floor["by_op"]["roundtrip"]["ops_per_sec"]
    rows = []
    for cell in order:
        figs = by[cell]
        ours = figs.get("ringkv")
        base_name = next((n for n in figs if n != "ringkv"), None)
        base = figs.get(base_name) if base_name else None
        ratio = None
        if ours and base and base["ops_per_sec"]:
            ratio = ours["ops_per_sec"] / base["ops_per_sec"]
        rows.append({
            "workload": cell[0], "op": cell[1], "ringkv": ours, "baseline": base_name, "baseline_figures": base,
            "ratio": ratio,
            "ringkv_over_floor": ours["ops_per_sec"] / floor_rate if ours and floor_rate and cell[1] != "all" else None,
        })
    return rows


# ---------------------------------------------------------------- output


def _ms_text(v: Optional[float]) -> str:
    """Milliseconds with about three significant digits."""
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def print_report(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    p, t = doc["params"], doc["target"]
    where = t["kind"]
    if "keyspace" in t and "n" in t["keyspace"]:
        ks = t["keyspace"]
        where += f", keyspace N={ks['n']} R={ks['r']} W={ks['w']}"
    title = (f"ringkv YCSB-style benchmark: {where}; {p['records']:,} records, {p['value_size']}-byte values, "
             f"{p['distribution']} keys, {p['concurrency']} in flight, {p['duration_s']:g}s per workload"
             f"{', best of ' + str(p['rounds']) if p.get('rounds', 1) > 1 else ''}, {os.cpu_count()} CPUs")
    table = Table(title=title, title_justify="left")
    table.add_column("workload")
    table.add_column("op")
    for col in ("ringkv ops/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(col, justify="right")
    base_names = sorted({r["baseline"] for r in doc["rows"] if r["baseline"]})
    bname = "/".join(base_names) or "baseline"
    for col in (f"{bname} ops/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(col, justify="right")
    table.add_column("ringkv / base", justify="right")
    if doc.get("floor"):
        table.add_column("ringkv / pyzmq", justify="right")
    prev = None
    for row in doc["rows"]:
        ours, base = row["ringkv"] or {}, row["baseline_figures"] or {}
        label = OP_LABEL.get(row["op"], row["op"])
        if row["op"] == "iterate":
            label += f" ({p['scan_length']}/page)"
        cells = [row["workload"] if row["workload"] != prev else "", label]
        for figs in (ours, base):
            cells += [fmt(figs.get("ops_per_sec"), ",.0f"), _ms_text(figs.get("p50_ms")), _ms_text(figs.get("p95_ms")), _ms_text(figs.get("p99_ms"))]
        cells.append(fmt(row["ratio"], ".2f") + ("x" if row["ratio"] is not None else ""))
        if doc.get("floor"):
            cells.append(fmt(row["ringkv_over_floor"], ".2f") + ("x" if row["ringkv_over_floor"] is not None else ""))
        table.add_row(*cells, end_section=False)
        prev = row["workload"]
    fl = doc.get("floor")
    if fl and fl["by_op"].get("roundtrip"):
        f = fl["by_op"]["roundtrip"]
        cells = ["floor", "pyzmq round trip", "", "", "", "", fmt(f["ops_per_sec"], ",.0f"), _ms_text(f["p50_ms"]),
                 _ms_text(f["p95_ms"]), _ms_text(f["p99_ms"]), "", ""]
        table.add_row(*cells)
    console = Console(width=max(Console().width, 150))
    console.print(table)
    errs = [(r["system"], r["workload"], r["error_kinds"]) for r in doc["results"] if r["errors"]]
    for system, workload, kinds in errs:
        console.print(f"errors, {system} {workload}: {kinds}", highlight=False)
    iters = [r for r in doc["rows"] if r["op"] == "iterate"]
    for r in iters:
        ours, base = r["ringkv"] or {}, r["baseline_figures"] or {}
        console.print(f"feed iterate: ringkv {fmt(ours.get('items_per_sec'), ',.0f')} entries/s, "
                      f"{r['baseline'] or 'baseline'} {fmt(base.get('items_per_sec'), ',.0f')} entries/s", highlight=False)
    for note in doc.get("notes", []):
        console.print(note, highlight=False)
    if any(r.get("machine_cpu_util") is not None for r in doc["results"]):
        cpu = Table(title=f"CPU-seconds per second during each phase ({os.cpu_count()} cores)", title_justify="left",
                    caption="server: the nodes or redis-server; other servers: the other contender's (idle) servers meanwhile;"
                            " this process: the driver (and an in-process node); others: every other process on the machine",
                    caption_justify="left")
        for col in ("phase", "system", "server", "other servers", "this process", "others"):
            cpu.add_column(col, justify="left" if col in ("phase", "system") else "right")
        for r in doc["results"]:
            ph = r["workload"] + (" " + next(iter(r["by_op"])) if r["workload"] == "feed" and r["by_op"] else "")
            cpu.add_row(ph, r["system"], fmt(r.get("server_cpu_util"), ".2f"), fmt(r.get("idle_servers_cpu_util"), ".2f"),
                        fmt(r.get("client_cpu_util"), ".2f"), fmt(r.get("other_cpu_util"), ".2f"))
        console.print(cpu)
        console.print("Load from other processes skews every figure: read the ratios with the 'others' column.", highlight=False)


def plot(doc: dict, path: str) -> None:
    """Throughput and latency per workload and operation, ringkv beside its baselines (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    all_rows = doc["rows"]
    mixed = {r["workload"] for r in all_rows if r["op"] == "all"}
    # throughput: one group per workload (its whole mix), latency: one group per operation
    tput = [r for r in all_rows if r["op"] == "all" or r["workload"] not in mixed]
    rows = [r for r in all_rows if r["op"] != "all"]
    systems = ["ringkv"] + sorted({r["baseline"] for r in all_rows if r["baseline"]})
    colours = {"ringkv": "#1f77b4", "rocksdict": "#7f7f7f", "redis": "#d62728"}

    def label(r: dict) -> str:
        return f"{r['workload']}\n{'mix' if r['op'] == 'all' else OP_LABEL.get(r['op'], r['op'])}"

    def fig_of(r: dict, s: str) -> dict:
        return (r["ringkv"] if s == "ringkv" else r["baseline_figures"] if r["baseline"] == s else None) or {}

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8.0, 1.2 * len(rows) + 2), 9))
    width = 0.8 / len(systems)
    xs = range(len(tput))
    for k, s in enumerate(systems):
        ys = [fig_of(r, s).get("ops_per_sec") or 0 for r in tput]
        ax1.bar([x + (k - (len(systems) - 1) / 2) * width for x in xs], ys, width, label=s, color=colours.get(s))
        for x, r in zip(xs, tput):
            if s == "ringkv" and r["ratio"] is not None:
                ax1.annotate(f"{r['ratio']:.2f}x", (x, max(fig_of(r, "ringkv").get("ops_per_sec") or 1, 1)),
                             ha="center", va="bottom", fontsize=7)
    fl = doc.get("floor")
    if fl and fl["by_op"].get("roundtrip"):
        ax1.axhline(fl["by_op"]["roundtrip"]["ops_per_sec"], color="black", linestyle="--", linewidth=1, label="pyzmq round trips (floor)")
    ax1.set_yscale("log")
    ax1.set_ylabel("ops/s (log)")
    ax1.set_xticks(list(xs), [label(r) for r in tput], fontsize=8)
    ax1.legend(fontsize=8)
    p, t = doc["params"], doc["target"]
    ax1.set_title(f"throughput per workload (ringkv / baseline above the bars)\n{t['kind']}, {p['records']:,} records, "
                  f"{p['value_size']} B values, {p['distribution']} keys, {p['concurrency']} in flight", fontsize=10)
    xs = range(len(rows))
    labels = [label(r) for r in rows]
    width = 0.8 / (2 * len(systems))
    for k, s in enumerate(systems):
        for m, (q, alpha) in enumerate((("p50_ms", 1.0), ("p99_ms", 0.5))):
            ys = [fig_of(r, s).get(q) or 0 for r in rows]
            off = (2 * k + m - (2 * len(systems) - 1) / 2) * width
            ax2.bar([x + off for x in xs], ys, width, color=colours.get(s), alpha=alpha, label=f"{s} {q[:3]}")
    ax2.set_yscale("log")
    ax2.set_ylabel("latency ms (log)")
    ax2.set_xticks(list(xs), labels, fontsize=8)
    ax2.legend(fontsize=8, ncol=len(systems))
    ax2.set_title("latency p50 (solid) and p99 (light)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- command line


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser`` (e.g. the ``ringkv bench`` subparser) and return it.

    The target options default to SUPPRESS, so the same names given before
    the subcommand (``ringkv --connect ADDR bench``) are not overwritten.
    Sets ``func=run`` as the parser's default.
    """
    if parser is None:
        parser = argparse.ArgumentParser(prog="ringkv bench", description=__doc__.splitlines()[0],
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
    tg = parser.add_argument_group("target (one of; default: an embedded database in a temporary directory)")
    tg.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS, help="an embedded database in DIR (keyspace 'ycsb')")
    tg.add_argument("--node", action="store_true", default=argparse.SUPPRESS, help="an in-process ringkv.Node (one node, N=R=W=1) on this loop")
    tg.add_argument("--connect", metavar="ADDR", default=argparse.SUPPRESS, help="a running cluster (comma-separated node addresses)")
    tg.add_argument("--local-cluster", metavar="N", type=int, default=argparse.SUPPRESS,
                    help="start N local 'ringkv serve' processes for the run (removed at the end)")
    tg.add_argument("--timeout", metavar="SECONDS", type=float, default=argparse.SUPPRESS, help="deadline of each cluster call (default: 10)")
    tg.add_argument("--n", type=int, default=3, help="replicas of the benchmark keyspace on a cluster (default: %(default)s)")
    tg.add_argument("--r", type=int, default=2, help="read quorum (default: %(default)s)")
    tg.add_argument("--w", type=int, default=2, help="write quorum (default: %(default)s)")
    wl = parser.add_argument_group("workload")
    wl.add_argument("--workloads", default="A,B,C,F,feed", help="comma-separated, from A, B, C, F, feed (default: %(default)s)")
    wl.add_argument("--records", type=int, default=10_000, help="records loaded before the workloads (default: %(default)s)")
    wl.add_argument("--value-size", type=int, default=100, help="bytes per value and feed entry (default: %(default)s)")
    wl.add_argument("--concurrency", type=int, default=64, help="requests in flight on a network target (default: %(default)s)")
    wl.add_argument("--duration", type=float, default=5.0, help="seconds per workload and system (default: %(default)s)")
    wl.add_argument("--ops", type=int, default=None, help="stop each workload after this many operations")
    wl.add_argument("--distribution", choices=("zipfian", "uniform"), default="zipfian", help="key popularity (default: %(default)s)")
    wl.add_argument("--feeds", type=int, default=16, help="feeds the feed workload appends to (default: %(default)s)")
    wl.add_argument("--scan-length", type=int, default=100, help="entries per feed page read (default: %(default)s)")
    wl.add_argument("--rounds", type=int, default=1,
                    help="run the workloads this many times, interleaved ringkv / baseline, and keep the best of each (default: %(default)s)")
    wl.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    out = parser.add_argument_group("baselines and output")
    out.add_argument("--no-baselines", dest="baselines", action="store_false",
                     help="skip rocksdict / redis / pyzmq (measured by default in the same run)")
    out.add_argument("--setup-redis", action="store_true", help="run benchmarks/setup_redis.sh if redis-server or redis-py is missing")
    out.add_argument("--json", metavar="PATH", help="write the results as JSON")
    out.add_argument("--plot", metavar="PATH", help="write a PNG plot (needs matplotlib)")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(func=run)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
