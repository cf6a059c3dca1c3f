"""A 3-node ringkv cluster against redis-server, driven the same way, in the same run.

    python benchmarks/cluster.py [--seconds 5] [--concurrency 64] [--keys 10000] [--value-size 100]
                                 [--rounds 1] [--seed 42] [--profile [DIR]] [--setup] [--json [PATH]]

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
client process, and the ratio ringkv / redis. Every process and directory
is removed at the end, also on an error or Ctrl-C.

``--profile [DIR]`` samples the three nodes and this client with py-spy
(``pip install py-spy``) during the ringkv phases, writes flame graphs to DIR
(default ``benchmarks/results/profile``) and prints the top functions by own
time and, for ringkv's own code, by total time. Sampling costs CPU: the
throughput of a profiled run is not a result.

Missing redis-server or redis-py: ``bash benchmarks/setup_redis.sh`` (or
``--setup`` to have this script run it) installs them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.metadata
import itertools
import json
import os
import platform
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Awaitable, Callable, Optional

import ringkv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_JSON = os.path.join(HERE, "results", "cluster.json")
DEFAULT_PROFILE_DIR = os.path.join(HERE, "results", "profile")
SETUP = os.path.join(HERE, "setup_redis.sh")
KEYSPACE = "bench"
NODES = 3

try:
    import psutil
except ImportError:  # the bench extra has it; without it the CPU columns are blank
    psutil = None


# ------------------------------------------------------------------ processes


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark dies without cleaning up (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _spawn(cmd: list[str], log_path: str, **kw) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            **kw,
        )


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The next stdout line of ``proc``; '' if it exits or stays silent for ``timeout`` s."""
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        buf += chunk
    return buf.decode(errors="replace").strip()


class Cluster:
    """``NODES`` ringkv serve processes on loopback, in ``workdir``."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []
        self.addrs: list[str] = []
        self.ids: list[str] = []

    def start(self) -> None:
        for i in range(NODES):
            data = os.path.join(self.workdir, f"node{i + 1}")
            log = os.path.join(self.workdir, f"node{i + 1}.log")
            cmd = [sys.executable, "-m", "ringkv.cli.main", "serve", "--data-dir", data, "--listen", "tcp://127.0.0.1:0", "--log-level", "warning"]
            if self.addrs:
                cmd += ["--seed", self.addrs[0]]
            proc = _spawn(cmd, log, stdout=subprocess.PIPE)
            self.procs.append(proc)
            line = _read_line(proc, 60.0)
            m = re.fullmatch(r"ringkv node (\S+) listening on (\S+)", line)
            if not m:
                raise RuntimeError(f"node {i + 1} did not start (printed {line!r}); its log:\n{_tail(log)}")
            self.ids.append(m.group(1))
            self.addrs.append(m.group(2))

    def check_alive(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                raise RuntimeError(f"node {i + 1} exited with {p.returncode}; its log:\n{_tail(os.path.join(self.workdir, f'node{i + 1}.log'))}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            _stop(p)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


class RedisServer:
    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0

    def start(self) -> None:
        import redis

        log = os.path.join(self.workdir, "redis.log")
        for _ in range(5):  # a free port can be taken between probing and binding
            self.port = _free_port()
            self.proc = _spawn(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.workdir, "--daemonize", "no", "--logfile", log],
                log, stdout=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    redis.Redis(port=self.port, socket_timeout=1).ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.05)
            _stop(self.proc)
        raise RuntimeError(f"redis-server did not start; its log:\n{_tail(log)}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pids: list[int]) -> Optional[float]:
    if psutil is None:
        return None
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


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

    cpu0, own0 = _cpu_seconds(pids), time.process_time()
    start = pc()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = pc() - start
    cpu1, own1 = _cpu_seconds(pids), time.process_time()
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
    }


async def wait_converged(client, addrs: list[str], timeout: float = 60.0) -> None:
    """Until every node sees all NODES members up and alive, and the client its ring."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ok = True
        for addr in addrs:
            try:
                st = await client.astatus(addr)
            except ringkv.errors.RingKVError:
                ok = False
                break
            ms = st["members"]
            if len(ms) != NODES or any(m["status"] != "up" or m["liveness"] != "alive" or not m["tokens"] for m in ms):
                ok = False
                break
        if ok:
            await client.refresh()
            if len(client.ring()) == NODES:
                return
        if loop.time() > deadline:
            raise RuntimeError(f"the cluster did not converge within {timeout:g}s")
        await asyncio.sleep(0.2)  # bounded poll while gossip spreads the joins


class Profiler:
    """py-spy on the nodes and on this process while a phase runs."""

    def __init__(self, outdir: str, pids: dict[str, int], rate: int = 250) -> None:
        if shutil.which("py-spy") is None:
            raise SystemExit("--profile needs py-spy: pip install py-spy")
        self.outdir, self.pids, self.rate = outdir, pids, rate
        os.makedirs(outdir, exist_ok=True)
        self.procs: list[subprocess.Popen] = []

    def start(self, phase: str, seconds: float) -> None:
        self.procs = []
        for name, pid in self.pids.items():
            for fmt, ext in (("raw", "txt"),):
                out = os.path.join(self.outdir, f"{phase}-{name}.{ext}")
                self.procs.append(subprocess.Popen(
                    ["py-spy", "record", "--pid", str(pid), "--rate", str(self.rate), "--duration", str(max(1, int(seconds))),
                     "--nonblocking", "--nolineno", "--format", fmt, "--output", out],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))

    def stop(self) -> None:
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []

    def report(self, phase: str, names: list[str], seconds: float, top: int = 15) -> list[str]:
        """Top functions by own and by total samples over the raw stacks of ``names``."""
        self_n: collections.Counter = collections.Counter()
        total_n: collections.Counter = collections.Counter()
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
                    for fr in set(frames):
                        total_n[fr] += c
        if not samples:
            return [f"  (no samples for {phase} {', '.join(names)})"]
        busy = samples / (self.rate * seconds * len(names))
        out = [f"  {samples} busy samples over {len(names)} process(es): {busy:.0%} of {len(names)} core-time(s)",
               f"  {'own %':>7}  function"]
        for fr, c in self_n.most_common(top):
            out.append(f"  {100 * c / samples:6.1f}%  {fr}")
        out.append(f"  {'total %':>7}  function (ringkv code only)")
        ours = [(fr, c) for fr, c in total_n.most_common() if _is_ours(fr)]
        for fr, c in ours[:top]:
            out.append(f"  {100 * c / samples:6.1f}%  {fr}")
        return out


_FRAME = re.compile(r"^(.*) \((.*)\)$")


def _short(frame: str) -> str:
    """``func (/long/path/pkg/mod.py)`` -> ``func (pkg/mod.py)``."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, path = m.groups()
    parts = path.replace("\\", "/").split("/")
    return f"{func} ({'/'.join(parts[-2:])})"


_OURS = ("ringkv/", "quorum/", "ring/", "gossip/", "feeds/", "cli/")


def _is_ours(frame: str) -> bool:
    m = _FRAME.match(frame)
    return bool(m) and m.group(2).startswith(_OURS)


# ------------------------------------------------------------------ contenders


async def run_ringkv(args, cluster: Cluster, ks: list[bytes], vals: list[bytes], put_order, get_order,
                     rounds: list[dict], profiler: Optional[Profiler]) -> None:
    client = await ringkv.connect_async(cluster.addrs, timeout=10.0)
    try:
        await wait_converged(client, cluster.addrs)
        try:
            await client.akeyspace_create(KEYSPACE, n=3, r=2, w=2)
        except ringkv.errors.AlreadyExists:
            pass
        bench = client.keyspace(KEYSPACE)
        await asyncio.sleep(0.5)  # let the new keyspace settle on every node

        async def put(i: int) -> None:
            await bench.aput(ks[i], vals[i])

        async def get(i: int) -> None:
            if await bench.aget(ks[i]) is None:
                raise AssertionError("key missing")

        pre = await drive(put, put_order, args.concurrency, None, cluster.pids)
        if pre["errors"]:
            raise RuntimeError(f"ringkv preload failed: {pre['error_kinds']}")
        for r in rounds:
            cluster.check_alive()
            for phase, op, order in (("put", put, put_order), ("get", get, get_order)):
                if profiler:
                    profiler.start(f"ringkv-{phase}", args.seconds)
                r[f"ringkv {phase}"] = await drive(op, order, args.concurrency, args.seconds, cluster.pids)
                if profiler:
                    profiler.stop()
        cluster.check_alive()
    finally:
        await client.aclose()


async def run_redis(args, server: RedisServer, ks: list[bytes], vals: list[bytes], put_order, get_order, rounds: list[dict]) -> None:
    import redis.asyncio as aredis

    client = aredis.Redis(host="127.0.0.1", port=server.port, max_connections=args.concurrency + 8, socket_timeout=10)
    try:
        async def put(i: int) -> None:
            await client.set(ks[i], vals[i])

        async def get(i: int) -> None:
            if await client.get(ks[i]) is None:
                raise AssertionError("key missing")

        pre = await drive(put, put_order, args.concurrency, None, server.pids)
        if pre["errors"]:
            raise RuntimeError(f"redis preload failed: {pre['error_kinds']}")
        for r in rounds:
            for phase, op, order in (("put", put, put_order), ("get", get, get_order)):
                r[f"redis {phase}"] = await drive(op, order, args.concurrency, args.seconds, server.pids)
    finally:
        await client.aclose()


# ------------------------------------------------------------------ driver


def _missing_tools() -> list[str]:
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        missing.append("redis-py")
    return missing


def _best(rounds: list[dict]) -> dict[str, dict]:
    """Per cell, the round with the highest throughput."""
    out: dict[str, dict] = {}
    for r in rounds:
        for cell, res in r.items():
            if cell not in out or res["ops_per_sec"] > out[cell]["ops_per_sec"]:
                out[cell] = res
    return out


def _fmt(v: Optional[float], spec: str) -> str:
    return "-" if v is None else format(v, spec)


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
        print(f"{label:12}{res['ops_per_sec']:>10,.0f}{_fmt(res['p50_ms'], '.2f'):>9}{_fmt(res['p99_ms'], '.2f'):>9}"
              f"{res['errors']:>8}{_fmt(res['server_cpu_us_per_op'], ',.0f'):>12}{_fmt(res['client_cpu_us_per_op'], ',.0f'):>12}")
    ratio = {}
    for op in ("put", "get"):
        if f"ringkv {op}" in best and f"redis {op}" in best:
            ratio[op] = best[f"ringkv {op}"]["ops_per_sec"] / best[f"redis {op}"]["ops_per_sec"]
    if ratio:
        print("ringkv / redis: " + "   ".join(f"{op} {v:.3f}x" for op, v in ratio.items()))
    for cell, res in best.items():
        if res["errors"]:
            print(f"errors in {cell}: {res['error_kinds']}")
    print("server CPU: the 3 nodes together, or redis-server; client CPU: this process (the driver)."
          " Utilisation (CPU-seconds per second):",
          ", ".join(f"{c} {_fmt(r['server_cpu_util'], '.2f')}/{_fmt(r['client_cpu_util'], '.2f')}" for c, r in best.items()))
    return ratio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each measured phase (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default: %(default)s)")
    ap.add_argument("--keys", type=int, default=10_000, help="number of keys (default: %(default)s)")
    ap.add_argument("--value-size", type=int, default=100, help="value size in bytes (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the phases, keep the best of each (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=42, help="random seed for keys and values (default: %(default)s)")
    ap.add_argument("--no-redis", action="store_true", help="run ringkv only")
    ap.add_argument("--setup", action="store_true", help="run benchmarks/setup_redis.sh if redis-server or redis-py is missing")
    ap.add_argument("--profile", nargs="?", const=DEFAULT_PROFILE_DIR, metavar="DIR",
                    help=f"py-spy the nodes and the client during the ringkv phases (default dir: {os.path.relpath(DEFAULT_PROFILE_DIR)})")
    ap.add_argument("--json", nargs="?", const=DEFAULT_JSON, metavar="PATH",
                    help=f"also write results as JSON (default path: {os.path.relpath(DEFAULT_JSON)})")
    args = ap.parse_args(argv)
    if args.keys < 1 or args.value_size < 0 or args.rounds < 1 or args.concurrency < 1 or args.seconds <= 0:
        ap.error("--keys, --rounds, --concurrency must be >= 1, --seconds > 0, --value-size >= 0")

    if not args.no_redis and _missing_tools():
        if args.setup:
            subprocess.run(["bash", SETUP], check=True)
            import importlib
            importlib.invalidate_caches()
        if _missing_tools():
            print(f"missing: {', '.join(_missing_tools())}. Install with: bash {os.path.relpath(SETUP)}"
                  " (or run with --setup, or --no-redis for ringkv only)", file=sys.stderr)
            return 2

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally below stops every child.
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)

    ks, vals, put_order, get_order = make_data(args.keys, args.value_size, args.seed)
    workdir = tempfile.mkdtemp(prefix="ringkv-bench-cluster-")
    cluster = Cluster(workdir)
    redis_srv = RedisServer(workdir)
    rounds: list[dict] = [{} for _ in range(args.rounds)]
    profiler = None
    try:
        print(f"starting {NODES} ringkv nodes" + ("" if args.no_redis else " and redis-server") + f" in {workdir} ...", flush=True)
        cluster.start()
        if not args.no_redis:
            redis_srv.start()
        if args.profile:
            profiler = Profiler(args.profile, {**{f"node{i + 1}": pid for i, pid in enumerate(cluster.pids)}, "client": os.getpid()})
        asyncio.run(run_ringkv(args, cluster, ks, vals, put_order, get_order, rounds, profiler))
        if not args.no_redis:
            asyncio.run(run_redis(args, redis_srv, ks, vals, put_order, get_order, rounds))
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if profiler is not None:
            profiler.stop()
        redis_srv.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

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
            "env": {
                "ringkv": ringkv.__version__,
                "redis_py": _version("redis"),
                "redis_server": _redis_server_version(),
                "pyzmq": _version("pyzmq"),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "profiled": bool(args.profile),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"results written to {args.json}")
    return 0


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _redis_server_version() -> Optional[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"v=(\S+)", out)
    return m.group(1) if m else out.strip()


if __name__ == "__main__":
    sys.exit(main())
