"""Memory of a ringkv node process: idle, and holding many keys (RSS, psutil).

    python benchmarks/memory.py [--keys 1000000] [--load-seconds 120] [--value-size 100]
                                [--concurrency 128] [--idle 10] [--json [PATH]]

Starts one ``ringkv serve`` process on loopback in a temporary directory
(removed at the end, also on Ctrl-C) and samples its resident set size
(RSS; also USS, the memory only it uses) every 0.5 s:

* **idle, alone**: for ``--idle`` seconds after it printed that it listens;
* **idle, in a 3-node cluster**: two more nodes join it, and the three are
  sampled for ``--idle`` seconds once they see each other up;
* **holding keys**: a keyspace N=1 R=1 W=1 on the first node alone (a fresh
  single node, so every key is stored once, on it), loaded with ``--keys``
  keys of ``--value-size`` bytes, or as many as ``--load-seconds`` allow, by
  ``--concurrency`` puts in flight; sampled for ``--idle`` seconds after the
  load (RocksDB's memtables and block cache are part of it).

Target: idle node RSS <= 80 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time

from rich.console import Console
from rich.table import Table

import ringkv
from ringkv.benchtools import LocalCluster, add_seed_and_json_options, environment, run_directory, wait_converged, write_json
from ringkv.ycsb import UPDATE, OpSequence, drive_async, op_table, record_key

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results", "memory.json")
MB = 1024 * 1024


def sample(pids: list[int], seconds: float) -> list[dict]:
    """Per pid: max and last RSS / USS over ``seconds`` (MB)."""
    import psutil

    procs = [psutil.Process(p) for p in pids]
    out = [{"pid": p, "rss_max": 0.0, "uss_max": 0.0, "rss_last": 0.0, "uss_last": 0.0, "threads": 0} for p in pids]
    end = time.monotonic() + seconds
    while True:
        for o, proc in zip(out, procs):
            info = proc.memory_full_info()
            o["rss_last"], o["uss_last"] = info.rss / MB, info.uss / MB
            o["rss_max"] = max(o["rss_max"], o["rss_last"])
            o["uss_max"] = max(o["uss_max"], o["uss_last"])
            o["threads"] = proc.num_threads()
        if time.monotonic() >= end:
            return out
        time.sleep(0.5)  # sampling interval


async def load(addr: str, keys: int, seconds: float, value_size: int, concurrency: int, seed: int) -> dict:
    client = await ringkv.connect_async([addr], timeout=10.0)
    try:
        await client.akeyspace_create("mem", n=1, r=1, w=1)
        ks = client.keyspace("mem")
        rng = random.Random(seed)
        values = [rng.randbytes(value_size) for _ in range(256)]

        async def put(i: int, v: bytes) -> None:
            await ks.aput(record_key(i), v)

        fns = op_table(update=put)
        shown = [0.0]

        def progress(frac: float) -> None:
            if frac - shown[0] >= 0.1:
                shown[0] = frac
                print(f"  {frac:.0%}", flush=True)

        res = await drive_async(fns, OpSequence([UPDATE] * keys, list(range(keys))), values, seconds, keys, concurrency, progress)
        if res.errors:
            print(f"  load errors: {dict(res.errors)}", flush=True)
        return {"keys": res.ops, "seconds": res.seconds, "puts_per_sec": res.ops / res.seconds, "errors": sum(res.errors.values())}
    finally:
        await client.aclose()


async def converge(addrs: list[str]) -> None:
    client = await ringkv.connect_async(addrs, timeout=10.0)
    try:
        await wait_converged(client, addrs)
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000, help="keys to load, at most (default: %(default)s)")
    ap.add_argument("--load-seconds", type=float, default=120.0, help="stop loading after this long (default: %(default)s)")
    ap.add_argument("--value-size", type=int, default=100, help="bytes per value (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=128, help="puts in flight while loading (default: %(default)s)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of sampling per measurement (default: %(default)s)")
    add_seed_and_json_options(ap, DEFAULT_JSON)
    args = ap.parse_args(argv)
    try:
        import psutil  # noqa: F401
    except ImportError:
        print("memory.py needs psutil: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    doc: dict = {"benchmark": "memory", "params": vars(args)}
    try:
        with run_directory("ringkv-bench-memory-") as workdir, \
                LocalCluster(os.path.join(workdir, "alone")) as alone, LocalCluster(os.path.join(workdir, "trio")) as trio:
            os.makedirs(alone.workdir)
            os.makedirs(trio.workdir)
            print("idle node, alone ...", flush=True)
            alone.start(1)
            doc["idle_alone"] = sample(alone.pids, args.idle)[0]
            print("idle nodes in a 3-node cluster ...", flush=True)
            trio.start(3)
            asyncio.run(converge(trio.addrs))
            doc["idle_cluster"] = sample(trio.pids, args.idle)
            trio.stop()
            print(f"loading up to {args.keys:,} keys for at most {args.load_seconds:g}s into the lone node ...", flush=True)
            doc["load"] = asyncio.run(load(alone.addrs[0], args.keys, args.load_seconds, args.value_size, args.concurrency, args.seed))
            print(f"loaded {doc['load']['keys']:,} keys in {doc['load']['seconds']:.0f}s; sampling ...", flush=True)
            doc["loaded"] = sample(alone.pids, args.idle)[0]
            alone.check_alive()
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130

    con = Console(width=max(Console().width, 110))
    t = Table(title=f"ringkv serve process memory (MB; max over {args.idle:g}s of 0.5s samples), {os.cpu_count()} CPUs", title_justify="left")
    for col in ("", "RSS", "USS", "threads"):
        t.add_column(col, justify="left" if not col else "right")
    t.add_row("idle, alone", f"{doc['idle_alone']['rss_max']:.1f}", f"{doc['idle_alone']['uss_max']:.1f}", str(doc["idle_alone"]["threads"]))
    for i, s in enumerate(doc["idle_cluster"]):
        t.add_row(f"idle, node {i + 1} of a 3-node cluster", f"{s['rss_max']:.1f}", f"{s['uss_max']:.1f}", str(s["threads"]))
    ld = doc["load"]
    t.add_row(f"holding {ld['keys']:,} keys ({args.value_size}-byte values)", f"{doc['loaded']['rss_max']:.1f}",
              f"{doc['loaded']['uss_max']:.1f}", str(doc["loaded"]["threads"]))
    con.print(t)
    idle_max = max([doc["idle_alone"]["rss_max"]] + [s["rss_max"] for s in doc["idle_cluster"]])
    con.print(f"target: idle RSS <= 80 MB -> {idle_max:.1f} MB (highest idle node);"
              f" load: {ld['keys']:,} keys in {ld['seconds']:.0f}s ({ld['puts_per_sec']:,.0f} puts/s, {ld['errors']} errors);"
              f" RSS growth {doc['loaded']['rss_max'] - doc['idle_alone']['rss_max']:.1f} MB", highlight=False)
    if args.json:
        doc["env"] = environment()
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
