"""Handoff: joining a 4th node to a loaded 3-node cluster, vs a raw RocksDB scan + write of the same data.

    python benchmarks/streaming.py [--keys 500000] [--value-size 100] [--load-concurrency 128]
                                   [--probe-concurrency 8] [--before 10] [--seed 42] [--json [PATH]]

Three ``ringkv serve`` processes on loopback (temporary directories, removed
at the end, also on Ctrl-C), keyspace ``bench`` N=3 R=2 W=2, loaded with
``--keys`` keys of ``--value-size`` bytes. A light client load (``--probe-
concurrency`` requests in flight, half gets, half puts of loaded keys) runs
for ``--before`` seconds, then a 4th ``ringkv serve --seed ...`` starts and
the load goes on while it joins. The new node's ``status`` is polled (every
0.25 s) until it is ``up`` and its ``elastic`` state idle; its
``elastic.transfers`` give the keys and bytes streamed to it.

Figures: the handoff rate (keys/s and MB/s of records streamed, from the
first transfer seen to the last one done, and the whole join from process
start to ``up``), the client's p50/p99 latency before and during the join,
and, in the same run, a raw rocksdict range scan of the same number of
records of the same size written into a second rocksdict (WriteBatch of
1000), in this process: ratio = handoff rate / raw rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from typing import Optional

from rich.console import Console
from rich.table import Table

import ringkv
from ringkv.benchtools import LocalCluster, add_seed_and_json_options, environment, temporary_cluster, wait_converged, write_json
from ringkv.ycsb import UPDATE, OpSequence, drive_async, op_table, percentile, record_key

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results", "streaming.json")
KEYSPACE = "bench"
MB = 1024 * 1024


class Probe:
    """Client load during the measurement: (finish time, latency) of every successful op."""

    def __init__(self, ks, keys: int, concurrency: int, seed: int, value_size: int) -> None:
        self.ks, self.keys, self.concurrency = ks, keys, concurrency
        self.rng = random.Random(seed)
        self.value = self.rng.randbytes(value_size)
        self.samples: list[tuple[float, float]] = []
        self.errors: dict[str, int] = {}
        self._stop = False
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._worker(i)) for i in range(self.concurrency)]

    async def _worker(self, i: int) -> None:
        rng = random.Random(self.rng.random())
        pc = time.perf_counter
        while not self._stop:
            k = record_key(rng.randrange(self.keys))
            t0 = pc()
            try:
                if i % 2:
                    await self.ks.aput(k, self.value)
                else:
                    await self.ks.aget(k)
            except ringkv.errors.RingKVError as exc:
                name = type(exc).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                continue
            t1 = pc()
            self.samples.append((t1, t1 - t0))

    async def stop(self) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def window(self, t0: float, t1: float) -> dict:
        lat = sorted(l for t, l in self.samples if t0 <= t < t1)
        return {"ops": len(lat), "ops_per_sec": len(lat) / max(1e-9, t1 - t0),
                "p50_ms": (percentile(lat, 0.5) or 0) * 1e3, "p99_ms": (percentile(lat, 0.99) or 0) * 1e3,
                "max_ms": (lat[-1] if lat else 0) * 1e3}


async def load(ks, keys: int, value_size: int, concurrency: int, seed: int) -> dict:
    rng = random.Random(seed)
    values = [rng.randbytes(value_size) for _ in range(256)]

    async def put(i: int, v: bytes) -> None:
        await ks.aput(record_key(i), v)

    shown = [0.0]

    def progress(frac: float) -> None:
        if frac - shown[0] >= 0.1:
            shown[0] = frac
            print(f"  loaded {frac:.0%}", flush=True)

    res = await drive_async(op_table(update=put), OpSequence([UPDATE] * keys, list(range(keys))), values, 1e9, keys, concurrency,
                            lambda f: progress(f))
    if res.errors:
        raise RuntimeError(f"load failed: {dict(res.errors)}")
    return {"keys": keys, "seconds": res.seconds, "puts_per_sec": keys / res.seconds}


async def cluster_part(args, cluster: LocalCluster) -> dict:
    client = await ringkv.connect_async(cluster.addrs, timeout=10.0)
    probe: Optional[Probe] = None
    try:
        await wait_converged(client, cluster.addrs)
        await client.akeyspace_create(KEYSPACE, n=3, r=2, w=2)
        ks = client.keyspace(KEYSPACE)
        print(f"loading {args.keys:,} keys ({args.load_concurrency} in flight) ...", flush=True)
        loaded = await load(ks, args.keys, args.value_size, args.load_concurrency, args.seed)
        print(f"loaded in {loaded['seconds']:.0f}s ({loaded['puts_per_sec']:,.0f} puts/s)", flush=True)

        probe = Probe(ks, args.keys, args.probe_concurrency, args.seed, args.value_size)
        probe.start()
        pc = time.perf_counter
        t_before = pc()
        await asyncio.sleep(args.before)  # the "before" window of client latency
        t_join = pc()
        print("starting a 4th node ...", flush=True)
        loop = asyncio.get_running_loop()
        idx = await loop.run_in_executor(None, cluster.add_node, cluster.addrs[0])
        addr = cluster.addrs[idx]
        node_id = cluster.ids[idx]
        t_listening = pc()
        t_first: Optional[float] = None
        t_done: Optional[float] = None
        last: dict = {}
        deadline = t_join + args.max_join
        shown = 0.0
        while True:
            cluster.check_alive()
            try:
                st = await client.astatus(addr)
            except ringkv.errors.RingKVError:
                st = None
            now = pc()
            if st is not None:
                el = st.get("elastic", {})
                pulls = [t for t in el.get("transfers", []) if t["kind"] == "pull"]
                me = next((m for m in st["members"] if m["node_id"] == node_id), {})
                if pulls and t_first is None:
                    t_first = now
                last = {"transfers": pulls, "status": me.get("status"), "state": el.get("state")}
                if now - shown >= 5:
                    shown = now
                    keys = sum(t["keys"] for t in pulls)
                    print(f"  {now - t_join:5.1f}s: {me.get('status')}, {el.get('state')}, {len(pulls)} transfers,"
                          f" {keys:,} keys streamed", flush=True)
                if me.get("status") == "up" and el.get("state") == "idle" and pulls and all(t["done"] for t in pulls):
                    t_done = now
                    break
            if now > deadline:
                raise RuntimeError(f"the 4th node did not finish joining within {args.max_join:g}s; last status: {last}")
            await asyncio.sleep(0.25)  # status poll interval
        t_after = pc()
        await asyncio.sleep(min(5.0, args.before))  # a little load after the join, for the record
        await probe.stop()
        pulls = last["transfers"]
        keys = sum(t["keys"] for t in pulls)
        nbytes = sum(t["bytes"] for t in pulls)
        stream_s = max(1e-9, t_done - (t_first or t_listening))
        join_s = t_done - t_join
        return {
            "load": loaded,
            "handoff": {
                "keys": keys, "bytes": nbytes, "transfers": len(pulls),
                "stream_seconds": stream_s, "join_seconds": join_s, "listening_after_s": t_listening - t_join,
                "keys_per_sec": keys / stream_s, "mb_per_sec": nbytes / MB / stream_s,
                "keys_per_sec_whole_join": keys / join_s, "mb_per_sec_whole_join": nbytes / MB / join_s,
                "errors": [t["error"] for t in pulls if t["error"]],
            },
            "client_before": probe.window(t_before, t_join),
            "client_during": probe.window(t_join, t_after),
            "client_after": probe.window(t_after, pc()),
            "client_errors": probe.errors,
        }
    finally:
        if probe is not None and not probe._stop:
            await probe.stop()
        await client.aclose()


def raw_part(path: str, keys: int, record_bytes: int, seed: int) -> dict:
    """A raw rocksdict range scan of ``keys`` records of ``record_bytes`` (key + value), written into a second one."""
    from rocksdict import Options, Rdict, WriteBatch

    rng = random.Random(seed)
    src = Rdict(os.path.join(path, "src"), Options(raw_mode=True))
    dst = Rdict(os.path.join(path, "dst"), Options(raw_mode=True))
    try:
        klen = 24  # 8-byte hash prefix + a 16-byte key, as ringkv's storage keys here
        vlen = max(1, record_bytes - 16)
        filler = rng.randbytes(vlen)
        wb = WriteBatch(raw_mode=True)
        for i in range(keys):
            wb.put(rng.randbytes(8) + b"user%012d" % i, filler)
            if len(wb) >= 1000:
                src.write(wb)
                wb = WriteBatch(raw_mode=True)
        src.write(wb)
        src.flush()
        t0 = time.perf_counter()
        n = nbytes = 0
        wb = WriteBatch(raw_mode=True)
        for k, v in src.items():
            wb.put(k, v)
            n += 1
            nbytes += len(k) - 8 + len(v)
            if len(wb) >= 1000:
                dst.write(wb)
                wb = WriteBatch(raw_mode=True)
        dst.write(wb)
        dt = time.perf_counter() - t0
        assert n == keys
        return {"keys": n, "bytes": nbytes, "seconds": dt, "keys_per_sec": n / dt, "mb_per_sec": nbytes / MB / dt, "key_bytes": klen}
    finally:
        src.close()
        dst.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=500_000, help="keys loaded before the join (default: %(default)s)")
    ap.add_argument("--value-size", type=int, default=100, help="bytes per value (default: %(default)s)")
    ap.add_argument("--load-concurrency", type=int, default=128, help="puts in flight while loading (default: %(default)s)")
    ap.add_argument("--probe-concurrency", type=int, default=8, help="client requests in flight during the measurement (default: %(default)s)")
    ap.add_argument("--before", type=float, default=10.0, help="seconds of client load measured before the join (default: %(default)s)")
    ap.add_argument("--max-join", type=float, default=900.0, help="give up if the join takes longer (default: %(default)s s)")
    add_seed_and_json_options(ap, DEFAULT_JSON)
    args = ap.parse_args(argv)
    if min(args.keys, args.load_concurrency, args.probe_concurrency) < 1 or args.before <= 0:
        ap.error("--keys, --load-concurrency, --probe-concurrency must be >= 1 and --before > 0")

    try:
        with temporary_cluster("ringkv-bench-streaming-", 3) as (workdir, cluster):
            res = asyncio.run(cluster_part(args, cluster))
            cluster.stop()
            h = res["handoff"]
            per_record = max(1, h["bytes"] // max(1, h["keys"]))
            print(f"raw rocksdict scan + write of {h['keys']:,} records of {per_record} bytes ...", flush=True)
            raw = raw_part(os.path.join(workdir, "raw"), h["keys"], per_record, args.seed)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130

    h = res["handoff"]
    ratio = h["keys_per_sec"] / raw["keys_per_sec"]
    con = Console(width=max(Console().width, 120))
    t = Table(title=f"joining a 4th node to a 3-node cluster holding {args.keys:,} keys ({args.value_size}-byte values, N=3),"
                    f" {os.cpu_count()} CPUs", title_justify="left")
    for col in ("", "records", "MB", "seconds", "keys/s", "MB/s", "vs raw"):
        t.add_column(col, justify="left" if not col else "right")
    t.add_row("handoff, streaming (first transfer -> last done)", f"{h['keys']:,}", f"{h['bytes'] / MB:.1f}", f"{h['stream_seconds']:.1f}",
              f"{h['keys_per_sec']:,.0f}", f"{h['mb_per_sec']:.2f}", f"{ratio:.3f}x")
    t.add_row("handoff, whole join (process start -> up)", f"{h['keys']:,}", f"{h['bytes'] / MB:.1f}", f"{h['join_seconds']:.1f}",
              f"{h['keys_per_sec_whole_join']:,.0f}", f"{h['mb_per_sec_whole_join']:.2f}", f"{h['keys_per_sec_whole_join'] / raw['keys_per_sec']:.3f}x")
    t.add_row("raw rocksdict range scan + WriteBatch write", f"{raw['keys']:,}", f"{raw['bytes'] / MB:.1f}", f"{raw['seconds']:.2f}",
              f"{raw['keys_per_sec']:,.0f}", f"{raw['mb_per_sec']:.2f}", "1.00x")
    con.print(t)
    t2 = Table(title=f"client load during the measurement ({args.probe_concurrency} in flight, half gets, half puts)", title_justify="left")
    for col in ("", "ops/s", "p50 ms", "p99 ms", "max ms"):
        t2.add_column(col, justify="left" if not col else "right")
    for name in ("before", "during", "after"):
        w = res[f"client_{name}"]
        t2.add_row(f"{name} the join", f"{w['ops_per_sec']:,.0f}", f"{w['p50_ms']:.1f}", f"{w['p99_ms']:.1f}", f"{w['max_ms']:.0f}")
    con.print(t2)
    b, d = res["client_before"], res["client_during"]
    con.print(f"load: {res['load']['keys']:,} keys in {res['load']['seconds']:.0f}s ({res['load']['puts_per_sec']:,.0f} puts/s);"
              f" p99 during / before the join: {d['p99_ms'] / max(1e-9, b['p99_ms']):.2f}x;"
              f" client errors: {res['client_errors'] or 'none'}; transfer errors: {h['errors'] or 'none'}", highlight=False)

    if args.json:
        doc = {"benchmark": "streaming", "params": vars(args), "cluster": res, "raw": raw, "ratio_handoff_over_raw": ratio, "env": environment()}
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
