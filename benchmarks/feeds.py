"""Feeds on a 3-node cluster: append rate vs KV put rate, iteration rate vs a raw RocksDB range scan.

    python benchmarks/feeds.py [--seconds 10] [--concurrency 64] [--feeds 16] [--value-size 100]
                               [--mixed-sizes] [--entries 100000] [--rounds 2] [--seed 42] [--json [PATH]]

Three ``ringkv serve`` processes on loopback (temporary directories, removed
at the end, also on Ctrl-C), keyspace ``bench`` N=3 R=2 W=2, driven from this
process by one asyncio loop with ``--concurrency`` requests in flight:

* **put**: ``ks.aput`` of fresh random keys (a feed append is always a new
  entry too, so neither side overwrites);
* **append, F feeds**: ``feed.aappend`` spread over ``--feeds`` feeds of the
  same keyspace; **append, 1 feed**: all into one feed (one preference list,
  one coordinator: the single-stream case).

Phases alternate put / append for ``--rounds`` rounds and the best of each is
kept. Target: append >= 0.8x put.

Iteration: a feed of ``--entries`` entries is read from start to end by one
client (``aiterate``: a first page of 512 entries, then 2048-entry pages the coordinator reads
ahead, R=2), best of three, against a raw
rocksdict (``Rdict(path, Options(raw_mode=True))``) range scan over the same
number of entries with the same key layout and value size, in this process,
and the embedded database's feed iteration. Target: iterate >= 0.3x raw scan.
``--mixed-sizes`` draws every value's size from 0.5x to 1.5x ``--value-size``
(all runs use it alike): such pages are cut apart entry by entry, not in one call.
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
from ringkv.benchtools import LocalCluster, add_seed_and_json_options, environment, temporary_cluster, wait_converged, wait_quiet, write_json
from ringkv.ycsb import APPEND, UPDATE, drive_async, op_table, single_op

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results", "feeds.json")
KEYSPACE = "bench"


def _summary(res) -> dict:
    d = res.as_dict()
    fig = next(iter(d["by_op"].values()), {})
    return {"ops_per_sec": fig.get("ops_per_sec", 0.0), "p50_ms": fig.get("p50_ms"), "p99_ms": fig.get("p99_ms"),
            "ops": d["ops"], "errors": d["errors"], "error_kinds": d["error_kinds"], "server_cpu_util": d["server_cpu_util"],
            "client_cpu_util": d["client_cpu_util"], "other_cpu_util": d["other_cpu_util"]}


async def cluster_part(args, cluster: LocalCluster, run_id: str) -> dict:
    client = await ringkv.connect_async(cluster.addrs, timeout=10.0)
    try:
        await wait_converged(client, cluster.addrs)
        await client.akeyspace_create(KEYSPACE, n=3, r=2, w=2)
        ks = client.keyspace(KEYSPACE)
        rng = random.Random(args.seed)
        values = _values(rng, args.value_size, args.mixed_sizes)
        many = [ks.feed(f"{run_id}-{i}") for i in range(args.feeds)]
        one = ks.feed(f"{run_id}-single")

        async def put(arg: int, v: bytes) -> None:
            await ks.aput(b"k%010d" % arg, v)

        async def append_many(arg: int, v: bytes) -> None:
            await many[arg % len(many)].aappend(v)

        async def append_one(arg: int, v: bytes) -> None:
            await one.aappend(v)

        phases = [
            ("put", op_table(update=put), UPDATE),
            (f"append, {args.feeds} feeds", op_table(append=append_many), APPEND),
            ("append, 1 feed", op_table(append=append_one), APPEND),
        ]
        best: dict[str, dict] = {}
        for round_ in range(args.rounds):
            for name, fns, op in phases:
                cluster.check_alive()
                seq = single_op(op, args.seed * 100 + round_, modulo=1 << 30)
                res = await drive_async(fns, seq, values, args.seconds, None, args.concurrency, pids=cluster.pids)
                s = _summary(res)
                print(f"round {round_ + 1}: {name:<18} {s['ops_per_sec']:>9,.0f} ops/s  p50 {s['p50_ms']:.1f} ms"
                      f"  p99 {s['p99_ms']:.1f} ms  errors {s['errors']}", flush=True)
                if name not in best or s["ops_per_sec"] > best[name]["ops_per_sec"]:
                    best[name] = s

        # a feed of exactly --entries entries, then read end to end
        it_feed = ks.feed(f"{run_id}-iterate")

        async def fill(arg: int, v: bytes) -> None:
            await it_feed.aappend(v)

        res = await drive_async(op_table(append=fill), single_op(APPEND, args.seed), values, 1e9, args.entries, args.concurrency)
        if res.errors:
            raise RuntimeError(f"filling the feed failed: {dict(res.errors)}")
        rates = []
        # the appends leave RocksDB flushing and compacting for a while: read once the servers are idle
        # (the raw scan runs on an idle machine too)
        quiet = await wait_quiet(cluster.pids)
        for _ in range(3):
            t0 = time.perf_counter()
            n = 0
            async for _e in it_feed.aiterate():
                n += 1
            rates.append(n / (time.perf_counter() - t0))
            if n != args.entries:
                raise RuntimeError(f"iterated {n} entries, expected {args.entries}")
        return {"phases": best, "iterate_entries_per_sec": max(rates), "iterate_runs": rates, "server_cpu_before_iterate": quiet}
    finally:
        await client.aclose()


def _size(rng: random.Random, value_size: int, mixed: bool) -> int:
    """``value_size``, or with ``mixed`` a size drawn from half of it to one and a half times it."""
    return rng.randint(value_size // 2, value_size * 3 // 2) if mixed else value_size


def _values(rng: random.Random, value_size: int, mixed: bool) -> list[bytes]:
    return [rng.randbytes(_size(rng, value_size, mixed)) for _ in range(256)]


def raw_scan(path: str, entries: int, value_size: int, feed_name: bytes, seed: int, mixed: bool = False) -> tuple[float, list[float]]:
    """Entries/s of a raw rocksdict range scan over ``entries`` entries laid out like a feed's."""
    from ringkv.quorum.tables import feed_prefix
    from rocksdict import Options, Rdict

    rng = random.Random(seed)
    prefix = feed_prefix(feed_name)
    db = Rdict(path, Options(raw_mode=True))
    try:
        for i in range(entries):  # 16-byte ordered ids, as feed entry ids
            db[prefix + (time.time_ns() + i).to_bytes(8, "big") + rng.randbytes(8)] = rng.randbytes(_size(rng, value_size, mixed))
        db.put(prefix[:-1] + b"\xff", b"end")  # a key after the range, as other feeds would be
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            n = 0
            for k, _v in db.items(from_key=prefix):
                if not k.startswith(prefix):
                    break
                n += 1
            rates.append(n / (time.perf_counter() - t0))
            assert n == entries
        return max(rates), rates
    finally:
        db.close()


def embedded_part(path: str, entries: int, value_size: int, seed: int, mixed: bool = False) -> dict:
    rng = random.Random(seed)
    values = _values(rng, value_size, mixed)
    db = ringkv.open(path)
    try:
        feed = db.feed("iterate")
        t0 = time.perf_counter()
        for i in range(entries):
            feed.append(values[i & 255])
        append_rate = entries / (time.perf_counter() - t0)
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            n = sum(1 for _ in feed.iterate())
            rates.append(n / (time.perf_counter() - t0))
        return {"append_per_sec": append_rate, "iterate_entries_per_sec": max(rates)}
    finally:
        db.close()


def _sizes(args) -> str:
    return f"{args.value_size // 2}-{args.value_size * 3 // 2}-byte" if args.mixed_sizes else f"{args.value_size}-byte"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each put / append phase (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default: %(default)s)")
    ap.add_argument("--feeds", type=int, default=16, help="feeds the spread appends go to (default: %(default)s)")
    ap.add_argument("--value-size", type=int, default=100, help="bytes per value / entry (default: %(default)s)")
    ap.add_argument("--mixed-sizes", action="store_true",
                    help="values of 0.5x to 1.5x --value-size rather than all one size (pages then cannot be cut apart in one call)")
    ap.add_argument("--entries", type=int, default=100_000, help="entries of the feed that is iterated (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=2, help="put/append rounds, best kept (default: %(default)s)")
    add_seed_and_json_options(ap, DEFAULT_JSON)
    args = ap.parse_args(argv)
    if min(args.concurrency, args.feeds, args.entries, args.rounds) < 1 or args.seconds <= 0:
        ap.error("--concurrency, --feeds, --entries, --rounds must be >= 1 and --seconds > 0")

    run_id = f"feeds-{os.getpid()}"
    try:
        with temporary_cluster("ringkv-bench-feeds-", 3) as (workdir, cluster):
            res = asyncio.run(cluster_part(args, cluster, run_id))
            cluster.stop()
            raw_rate, raw_runs = raw_scan(os.path.join(workdir, "raw"), args.entries, args.value_size, b"iterate", args.seed, args.mixed_sizes)
            emb = embedded_part(os.path.join(workdir, "embedded"), args.entries, args.value_size, args.seed, args.mixed_sizes)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130

    ph = res["phases"]
    put = ph["put"]["ops_per_sec"]
    spread = ph[f"append, {args.feeds} feeds"]["ops_per_sec"]
    single = ph["append, 1 feed"]["ops_per_sec"]
    it = res["iterate_entries_per_sec"]
    ratios = {"append_spread_over_put": spread / put, "append_single_over_put": single / put,
              "iterate_over_raw_scan": it / raw_rate, "embedded_iterate_over_raw_scan": emb["iterate_entries_per_sec"] / raw_rate}

    con = Console(width=max(Console().width, 120))
    t = Table(title=f"feeds, 3-node cluster (keyspace N=3 R=2 W=2), {args.concurrency} in flight, {_sizes(args)} values, "
                    f"{args.seconds:g}s per phase, best of {args.rounds}, {os.cpu_count()} CPUs", title_justify="left")
    for col in ("", "ops/s", "p50 ms", "p99 ms", "errors", "server CPU", "others CPU", "vs put"):
        t.add_column(col, justify="left" if not col else "right")
    for name, s in ph.items():
        t.add_row(name, f"{s['ops_per_sec']:,.0f}", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", str(s["errors"]),
                  "-" if s["server_cpu_util"] is None else f"{s['server_cpu_util']:.2f}",
                  "-" if s["other_cpu_util"] is None else f"{s['other_cpu_util']:.2f}", f"{s['ops_per_sec'] / put:.2f}x")
    con.print(t)
    con.print(f"target: append >= 0.80x put -> {args.feeds} feeds {ratios['append_spread_over_put']:.2f}x,"
              f" 1 feed {ratios['append_single_over_put']:.2f}x", highlight=False)
    quiet = res.get("server_cpu_before_iterate")
    t2 = Table(title=f"iterating {args.entries:,} entries ({_sizes(args)}), one reader, best of 3"
                     + ("" if quiet is None else f"; servers at {quiet:.2f} CPU when it began"), title_justify="left")
    for col in ("", "entries/s", "vs raw scan"):
        t2.add_column(col, justify="left" if not col else "right")
    t2.add_row("raw rocksdict range scan (in process)", f"{raw_rate:,.0f}", "1.00x")
    t2.add_row("ringkv cluster feed iterate (R=2, 2048-entry pages read ahead)", f"{it:,.0f}", f"{ratios['iterate_over_raw_scan']:.3f}x")
    t2.add_row("ringkv embedded feed iterate", f"{emb['iterate_entries_per_sec']:,.0f}", f"{ratios['embedded_iterate_over_raw_scan']:.3f}x")
    con.print(t2)
    con.print(f"target: iterate >= 0.30x raw scan -> cluster {ratios['iterate_over_raw_scan']:.3f}x"
              f" (embedded {ratios['embedded_iterate_over_raw_scan']:.3f}x); embedded append {emb['append_per_sec']:,.0f}/s", highlight=False)

    if args.json:
        doc = {"benchmark": "feeds", "params": vars(args), "cluster": res, "raw_scan_entries_per_sec": raw_rate,
               "raw_scan_runs": raw_runs, "embedded": emb, "ratios": ratios, "env": environment()}
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
