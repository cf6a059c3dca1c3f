"""A 3-node ringkv cluster against redis-server, driven the same way, in the same run.

    python benchmarks/cluster.py [--seconds 5] [--concurrency 64] [--keys 10000] [--value-size 100]
                                 [--rounds 1] [--seed 42] [--profile [DIR]] [--no-redis] [--fsync] [--setup] [--json [PATH]]

ringkv: three ``python -m ringkv.cli.main serve`` processes on loopback (free
ports, fresh temporary data directories), the second and third joining
through the first, and a keyspace ``bench`` with N=3 R=2 W=2. redis: one
``redis-server`` on a free port with ``--save '' --appendonly no`` in a
temporary directory. Both are driven from this process by one asyncio loop
with ``--concurrency`` requests in flight (each an independent coroutine
awaiting its reply): ringkv through ``ringkv.connect_async`` (token-aware,
``ks.aput`` / ``ks.aget``), redis through ``redis.asyncio`` (SET / GET, a
connection per in-flight request). Both get the same random 16-byte keys
(seeded) and values: every key is first written once (preload, untimed),
then each phase runs for ``--seconds``: puts overwrite keys in one random
order, gets read them in another. Gets must find every key.

Prints ops/s, p50 and p99 latency per phase, CPU time per operation spent in
the server processes (the three nodes together; redis-server) and in this
client process, the ratio ringkv / redis, and how much CPU everything else
on the machine used meanwhile (the figures move with it). With ``--rounds
N`` the phases repeat, interleaved ringkv / redis, and the best of each is
kept. Every process and directory is removed at the end, also on an error,
Ctrl-C or SIGTERM.

``--profile [DIR]`` samples the three nodes and this client with py-spy
(``pip install py-spy``) during the first round of ringkv phases, keeps the
raw stacks in DIR (default ``benchmarks/results/profile``; collapsed-stack
text, which speedscope or flamegraph.pl open) and prints the share of
samples by layer, the top functions by own time and ringkv's functions by
total time. py-spy counts a runnable thread waiting for a CPU as busy: on a
loaded machine the event loop's epoll wait and ZeroMQ's send (which wakes
ZeroMQ's I/O thread) look far bigger than their CPU cost. Sampling costs
CPU: the throughput of a profiled run is not a result.

``--fsync`` compares durable writes: every node acknowledges a write only
once it is synced to disk (writes of one loop turn share an fsync), and
redis appends every write to its AOF with ``appendfsync always``.

Missing redis-server or redis-py: ``bash benchmarks/setup_redis.sh`` (or
``--setup`` to have this script run it) installs them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import time
from typing import Awaitable, Callable, Optional

import ringkv
from ringkv.benchtools import (
    LocalCluster, RedisServer, add_seed_and_json_options, describe_environment, fmt, machine_busy, package_version,
    process_cpu, redis_available, redis_server_version, run_directory, wait_converged, write_json,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results", "cluster.json")
DEFAULT_PROFILE_DIR = os.path.join(HERE, "results", "profile")
SETUP = os.path.join(HERE, "setup_redis.sh")
KEYSPACE = "bench"
NODES = 3


# ------------------------------------------------------------------ load


def make_data(keys: int, value_size: int, seed: int) -> tuple[list[bytes], list[bytes], list[int], list[int]]:
    rng = random.Random(seed)
    ks: dict[bytes, None] = {}
    while len(ks) < keys:
        ks[rng.randbytes(16)] = None
    vals = [rng.randbytes(value_size) for _ in range(keys)]
    put_order, get_order = list(range(keys)), list(range(keys))
    rng.shuffle(put_order)
    rng.shuffle(get_order)
    return list(ks), vals, put_order, get_order


async def drive(op: Callable[[int], Awaitable[object]], order: list[int], concurrency: int,
                seconds: Optional[float], pids: list[int]) -> dict:
    """Run ``op(key_index)`` from ``concurrency`` coroutines: for ``seconds``, or
    once over ``order`` if ``seconds`` is None. Latencies of successful ops only."""
    n = len(order)
    counter = itertools.count()
    lat: list[float] = []
    errors: collections.Counter = collections.Counter()
    pc = time.perf_counter
    stop = pc() + seconds if seconds is not None else float("inf")

    async def worker() -> None:
        while True:
            t0 = pc()
            if t0 >= stop:
                return
            j = next(counter)
            if seconds is None and j >= n:
                return
            try:
                await op(order[j % n])
            except Exception as exc:  # counted and shown; the run goes on
                errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                continue
            lat.append(pc() - t0)

    cpu0, own0, all0 = process_cpu(pids), time.process_time(), machine_busy()
    start = pc()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = pc() - start
    cpu1, own1, all1 = process_cpu(pids), time.process_time(), machine_busy()
    lat.sort()
    ops = len(lat)

    def q(p: float) -> Optional[float]:
        return lat[min(ops - 1, int(p * ops))] * 1000 if ops else None

    return {
        "ops": ops,
        "seconds": elapsed,
        "ops_per_sec": ops / elapsed,
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common(5)),
        "server_cpu_us_per_op": None if cpu0 is None or not ops else (cpu1 - cpu0) / ops * 1e6,
        "server_cpu_util": None if cpu0 is None else (cpu1 - cpu0) / elapsed,
        "client_cpu_us_per_op": (own1 - own0) / ops * 1e6 if ops else None,
        "client_cpu_util": (own1 - own0) / elapsed,
        #: CPU-seconds per second used meanwhile by everything else on the machine
        "other_cpu_util": None if all0 is None or cpu0 is None else max(0.0, (all1 - all0) - (cpu1 - cpu0) - (own1 - own0)) / elapsed,
    }


class Profiler:
    """py-spy on the nodes and on this process while a phase runs."""

    def __init__(self, outdir: str, pids: dict[str, int], rate: int = 250) -> None:
        self.outdir, self.pids, self.rate = outdir, pids, rate
        os.makedirs(outdir, exist_ok=True)
        self.procs: list[subprocess.Popen] = []

    def start(self, phase: str, seconds: float) -> None:
        self.procs = []
        for name, pid in self.pids.items():
            out = os.path.join(self.outdir, f"{phase}-{name}")
            with open(out + ".log", "wb") as log:  # py-spy's own messages (e.g. no ptrace permission)
                self.procs.append(subprocess.Popen(
                    ["py-spy", "record", "--pid", str(pid), "--rate", str(self.rate), "--duration", str(max(1, int(seconds))),
                     "--nonblocking", "--nolineno", "--format", "raw", "--output", out + ".txt"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                ))

    def stop(self) -> None:
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    def report(self, phase: str, names: list[str], seconds: float, top: int = 12) -> list[str]:
        """Where the samples of ``names`` fall: by layer, by function (own), by ringkv function (total)."""
        self_n: collections.Counter = collections.Counter()
        total_n: collections.Counter = collections.Counter()
        layer_n: collections.Counter = collections.Counter()
        samples = 0
        for name in names:
            path = os.path.join(self.outdir, f"{phase}-{name}.txt")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                for line in f:
                    stack, _, count = line.rstrip("\n").rpartition(" ")
                    if not stack or not count.isdigit():
                        continue
                    c = int(count)
                    frames = [_short(fr) for fr in stack.split(";") if not fr.startswith(("process ", "thread "))]
                    if not frames:
                        continue
                    samples += c
                    self_n[frames[-1]] += c
                    layer_n[_layer(frames[-1])] += c
                    for fr in set(frames):
                        total_n[fr] += c
        if not samples:
            return [f"  (no samples for {phase} {', '.join(names)}: see the .log files in {self.outdir})"]
        busy = samples / (self.rate * seconds * len(names))
        out = [f"  {samples} samples of a running or runnable thread over {len(names)} process(es):"
               f" {busy:.0%} of {len(names)} x {seconds:g}s",
               f"  {'%':>7}  layer (by the innermost Python frame)"]
        for layer, c in layer_n.most_common():
            out.append(f"  {100 * c / samples:6.1f}%  {layer}")
        out.append(f"  {'own %':>7}  function")
        for fr, c in self_n.most_common(top):
            out.append(f"  {100 * c / samples:6.1f}%  {fr}")
        out.append(f"  {'total %':>7}  ringkv function, including what it calls")
        ours = [(fr, c) for fr, c in total_n.most_common() if _is_ours(fr)]
        for fr, c in ours[:top]:
            out.append(f"  {100 * c / samples:6.1f}%  {fr}")
        return out


_LAYERS = (
    # (layer, substrings of the innermost frame), first match wins
    ("event loop waiting in epoll (idle, or runnable waiting for a CPU)", ("EpollSelector.select",)),
    ("ZeroMQ send (a few us of CPU; the rest waiting for a CPU after waking ZeroMQ's I/O thread)", ("Socket.send ",)),
    ("ZeroMQ receive", ("Socket.recv", "zmq/")),
    ("asyncio machinery (tasks, futures, handles, wait)", ("asyncio/", "contextvars")),
    ("transport and wire (frames, envelopes, message checks)", ("ringkv/transport.py", "ringkv/peer.py", "ringkv/envelope.py",
                                                              "ringkv/dispatch.py", "ringkv/wire.py", "ringkv/errors.py", "<string>")),
    ("storage and records (RocksDB, record codec, DVV, HLC)", ("quorum/replica.py", "ringkv/storage.py", "ringkv/codec.py",
                                                              "quorum/dvv.py", "quorum/hlc.py", "quorum/hints.py")),
    ("quorum coordination and placement", ("quorum/", "ring/", "ringkv/server.py", "ringkv/hashing.py", "cachetools/")),
    ("client API (routing, checks, request ids)", ("ringkv/client.py", "ringkv/keys.py", "ringkv/result.py", "uuid.py")),
    ("benchmark driver", ("cluster.py",)),
)


def _layer(frame: str) -> str:
    for layer, marks in _LAYERS:
        if any(m in frame for m in marks):
            return layer
    return "other"


_FRAME = re.compile(r"^(.*) \((.*)\)$")


def _short(frame: str) -> str:
    """``func (/long/path/pkg/mod.py)`` -> ``func (pkg/mod.py)``."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, path = m.groups()
    parts = path.replace("\\", "/").split("/")
    return f"{func} ({'/'.join(parts[-2:])})"


_OURS = ("ringkv/", "quorum/", "ring/", "gossip/", "feeds/")


def _is_ours(frame: str) -> bool:
    m = _FRAME.match(frame)
    return bool(m) and m.group(2).startswith(_OURS)


# ------------------------------------------------------------------ contenders


class RingkvContender:
    name = "ringkv"

    def __init__(self, cluster: LocalCluster, ks: list[bytes], vals: list[bytes]) -> None:
        self.cluster, self.ks, self.vals = cluster, ks, vals
        self.pids = cluster.pids
        self.client = None
        self.bench = None

    async def open(self) -> None:
        self.client = await ringkv.connect_async(self.cluster.addrs, timeout=10.0)
        await wait_converged(self.client, self.cluster.addrs, timeout=60.0)
        try:
            await self.client.akeyspace_create(KEYSPACE, n=3, r=2, w=2)
        except ringkv.errors.AlreadyExists:
            pass
        self.bench = self.client.keyspace(KEYSPACE)

    async def put(self, i: int) -> None:
        await self.bench.aput(self.ks[i], self.vals[i])

    async def get(self, i: int) -> None:
        if await self.bench.aget(self.ks[i]) is None:
            raise AssertionError("key missing")

    def check(self) -> None:
        self.cluster.check_alive()

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


class RedisContender:
    name = "redis"

    def __init__(self, server: RedisServer, ks: list[bytes], vals: list[bytes], concurrency: int) -> None:
        self.server, self.ks, self.vals, self.concurrency = server, ks, vals, concurrency
        self.pids = server.pids
        self.client = None

    async def open(self) -> None:
        import redis.asyncio as aredis

        self.client = aredis.Redis(host="127.0.0.1", port=self.server.port, max_connections=self.concurrency + 8, socket_timeout=10)
        await self.client.ping()

    async def put(self, i: int) -> None:
        await self.client.set(self.ks[i], self.vals[i])

    async def get(self, i: int) -> None:
        if await self.client.get(self.ks[i]) is None:
            raise AssertionError("key missing")

    def check(self) -> None:
        if self.server.proc is None or self.server.proc.poll() is not None:
            raise RuntimeError("redis-server exited")

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


async def run(args, contenders: list, put_order: list[int], get_order: list[int],
              rounds: list[dict], profiler: Optional[Profiler]) -> None:
    """Open and preload every contender, then per round: each contender's put
    phase, then its get phase (interleaved, so load from elsewhere on the
    machine hits all of them alike)."""
    try:
        for c in contenders:
            await c.open()
            pre = await drive(c.put, put_order, args.concurrency, None, c.pids)
            if pre["errors"]:
                raise RuntimeError(f"{c.name} preload failed: {pre['error_kinds']}")
        for round_, r in enumerate(rounds):
            for c in contenders:
                c.check()
                for phase, op, order in (("put", c.put, put_order), ("get", c.get, get_order)):
                    profiling = profiler is not None and c.name == "ringkv" and round_ == 0
                    if profiling:
                        profiler.start(f"ringkv-{phase}", args.seconds)
                    r[f"{c.name} {phase}"] = await drive(op, order, args.concurrency, args.seconds, c.pids)
                    if profiling:
                        profiler.stop()
                c.check()
    finally:
        for c in contenders:
            await c.aclose()


# ------------------------------------------------------------------ driver


def _best(rounds: list[dict]) -> dict[str, dict]:
    """Per cell, the round with the highest throughput."""
    out: dict[str, dict] = {}
    for r in rounds:
        for cell, res in r.items():
            if cell not in out or res["ops_per_sec"] > out[cell]["ops_per_sec"]:
                out[cell] = res
    return out


def print_table(args, best: dict[str, dict]) -> dict[str, float]:
    print(f"\n{NODES}-node ringkv cluster (keyspace N=3 R=2 W=2) vs redis-server, loopback, {os.cpu_count()} CPUs")
    print(f"{args.concurrency} requests in flight, {args.keys:,} keys, {args.value_size}-byte values,"
          f" {args.seconds:g}s per phase, best of {args.rounds}")
    head = f"{'':12}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'server CPU':>12}{'client CPU':>12}"
    print(head)
    print(f"{'':12}{'':>10}{'':>9}{'':>9}{'':>8}{'us/op':>12}{'us/op':>12}")
    for cell in ("ringkv put", "redis put", "ringkv get", "redis get"):
        res = best.get(cell)
        if res is None:
            continue
        label = cell.replace("redis put", "redis SET").replace("redis get", "redis GET")
        print(f"{label:12}{res['ops_per_sec']:>10,.0f}{fmt(res['p50_ms'], '.2f'):>9}{fmt(res['p99_ms'], '.2f'):>9}"
              f"{res['errors']:>8}{fmt(res['server_cpu_us_per_op'], ',.0f'):>12}{fmt(res['client_cpu_us_per_op'], ',.0f'):>12}")
    ratio = {}
    for op in ("put", "get"):
        if f"ringkv {op}" in best and f"redis {op}" in best:
            ratio[op] = best[f"ringkv {op}"]["ops_per_sec"] / best[f"redis {op}"]["ops_per_sec"]
    if ratio:
        print("ringkv / redis: " + "   ".join(f"{op} {v:.3f}x" for op, v in ratio.items()))
    for cell, res in best.items():
        if res["errors"]:
            print(f"errors in {cell}: {res['error_kinds']}")
    print("\nCPU use (CPU-seconds per second; the machine has", os.cpu_count(), "cores)")
    print(f"{'':12}{'server':>10}{'client':>10}{'others':>10}")
    for cell in ("ringkv put", "redis put", "ringkv get", "redis get"):
        res = best.get(cell)
        if res is not None:
            label = cell.replace("redis put", "redis SET").replace("redis get", "redis GET")
            print(f"{label:12}{fmt(res['server_cpu_util'], '.2f'):>10}{fmt(res['client_cpu_util'], '.2f'):>10}"
                  f"{fmt(res['other_cpu_util'], '.2f'):>10}")
    print("server: the 3 nodes together, or redis-server; client: this process (the driver);"
          " others: every other process on the machine meanwhile (load that skews the figures)")
    return ratio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each measured phase (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default: %(default)s)")
    ap.add_argument("--keys", type=int, default=10_000, help="number of keys (default: %(default)s)")
    ap.add_argument("--value-size", type=int, default=100, help="value size in bytes (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the phases, keep the best of each (default: %(default)s)")
    ap.add_argument("--no-redis", action="store_true", help="run ringkv only")
    ap.add_argument("--fsync", action="store_true",
                    help="durable writes on both sides: nodes run with --fsync (group commit), redis with appendfsync always")
    ap.add_argument("--setup", action="store_true", help="run benchmarks/setup_redis.sh if redis-server or redis-py is missing")
    ap.add_argument("--profile", nargs="?", const=DEFAULT_PROFILE_DIR, metavar="DIR",
                    help=f"py-spy the nodes and the client during the ringkv phases (default dir: {os.path.relpath(DEFAULT_PROFILE_DIR)})")
    add_seed_and_json_options(ap, DEFAULT_JSON)
    args = ap.parse_args(argv)
    if args.keys < 1 or args.value_size < 0 or args.rounds < 1 or args.concurrency < 1 or args.seconds <= 0:
        ap.error("--keys, --rounds, --concurrency must be >= 1, --seconds > 0, --value-size >= 0")

    if args.profile and shutil.which("py-spy") is None:
        ap.error("--profile needs py-spy: pip install py-spy")
    if not args.no_redis and not redis_available()[0]:
        if args.setup:
            subprocess.run(["bash", SETUP], check=True)
            import importlib
            importlib.invalidate_caches()
        ok, missing = redis_available()
        if not ok:
            print(f"missing: {missing}. Install with: bash {os.path.relpath(SETUP)}"
                  " (or run with --setup, or --no-redis for ringkv only)", file=sys.stderr)
            return 2

    ks, vals, put_order, get_order = make_data(args.keys, args.value_size, args.seed)
    rounds: list[dict] = [{} for _ in range(args.rounds)]
    profiler = None
    try:
        with run_directory("ringkv-bench-cluster-") as workdir, LocalCluster(workdir, extra_args=["--fsync"] if args.fsync else []) as cluster:
            redis_srv = RedisServer(workdir, durable=args.fsync)
            try:
                print(f"starting {NODES} ringkv nodes" + ("" if args.no_redis else " and redis-server") + f" in {workdir} ...", flush=True)
                cluster.start(NODES)
                if not args.no_redis:
                    redis_srv.start()
                if args.profile:
                    profiler = Profiler(args.profile, {**{f"node{i + 1}": pid for i, pid in enumerate(cluster.pids)}, "client": os.getpid()})
                contenders: list = [RingkvContender(cluster, ks, vals)]
                if not args.no_redis:
                    contenders.append(RedisContender(redis_srv, ks, vals, args.concurrency))
                asyncio.run(run(args, contenders, put_order, get_order, rounds, profiler))
            finally:
                if profiler is not None:
                    profiler.stop()
                redis_srv.stop()
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130

    best = _best(rounds)
    ratio = print_table(args, best)
    if profiler is not None:
        nodes = [f"node{i + 1}" for i in range(NODES)]
        for phase in ("put", "get"):
            print(f"\nprofile, ringkv {phase}, nodes (py-spy, {profiler.rate} Hz; files in {os.path.relpath(args.profile)}):")
            print("\n".join(profiler.report(f"ringkv-{phase}", nodes, args.seconds)))
            print(f"\nprofile, ringkv {phase}, client:")
            print("\n".join(profiler.report(f"ringkv-{phase}", ["client"], args.seconds)))

    if args.json:
        doc = {
            "benchmark": "cluster",
            "params": {k: getattr(args, k) for k in ("seconds", "concurrency", "keys", "value_size", "rounds", "seed")},
            "nodes": NODES,
            "keyspace": {"n": 3, "r": 2, "w": 2},
            "results": best,
            "ratio_ringkv_over_redis": ratio,
            "env": describe_environment(
                {"redis_py": package_version("redis"), "redis_server": redis_server_version(), "pyzmq": package_version("pyzmq")},
                profiled=bool(args.profile),
            ),
        }
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
