"""Embedded ringkv vs raw RocksDB (rocksdict) on the same keys, in the same run.

    python benchmarks/embedded.py [--keys 200000] [--value-size 100] [--json [PATH]]

Both stores run in one process on fresh temporary directories (removed
afterwards), with the same random 16-byte keys and values. Raw is
``Rdict(path, Options(raw_mode=True))`` with default options and ``rdict[k] = v``
/ ``rdict[k]``; ringkv is ``ringkv.open(path)`` with ``db.put`` / ``db.get``
(default options: WAL on, no fsync, as raw). Gets read every key once, in a
different random order than the puts, right after the puts.
Prints ops/s for each and the ratio ringkv/raw.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Callable

from rocksdict import Options, Rdict

import ringkv
from ringkv.benchtools import add_seed_and_json_options, describe_environment, package_version, write_json

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "embedded.json")


def make_data(keys: int, value_size: int, seed: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    rng = random.Random(seed)
    ks = list(dict.fromkeys(rng.randbytes(16) for _ in range(keys)))  # unique, order kept
    while len(ks) < keys:  # a collision is astronomically unlikely, but be exact
        k = rng.randbytes(16)
        if k not in ks:
            ks.append(k)
    vals = [rng.randbytes(value_size) for _ in range(keys)]
    read_order = ks[:]
    rng.shuffle(read_order)
    return ks, vals, read_order


def timed(fn: Callable[[], None], ops: int) -> float:
    start = time.perf_counter()
    fn()
    return ops / (time.perf_counter() - start)


def bench_raw(path: str, ks: list[bytes], vals: list[bytes], read_order: list[bytes]) -> dict:
    db = Rdict(path, Options(raw_mode=True))
    try:

        def puts() -> None:
            for k, v in zip(ks, vals):
                db[k] = v

        def gets() -> None:
            get = db.get
            for k in read_order:
                if get(k) is None:
                    raise AssertionError("raw: key missing")

        return {"put": timed(puts, len(ks)), "get": timed(gets, len(ks))}
    finally:
        db.close()


def bench_ringkv(path: str, ks: list[bytes], vals: list[bytes], read_order: list[bytes]) -> dict:
    db = ringkv.open(path)
    try:

        def puts() -> None:
            put = db.put
            for k, v in zip(ks, vals):
                put(k, v)

        def gets() -> None:
            get = db.get
            for k in read_order:
                if get(k) is None:
                    raise AssertionError("ringkv: key missing")

        return {"put": timed(puts, len(ks)), "get": timed(gets, len(ks))}
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=200_000, help="number of keys (default: %(default)s)")
    ap.add_argument("--value-size", type=int, default=100, help="value size in bytes (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat and keep the best of each (default: %(default)s)")
    add_seed_and_json_options(ap, DEFAULT_JSON)
    args = ap.parse_args(argv)
    if args.keys < 1 or args.value_size < 0 or args.rounds < 1:
        ap.error("--keys and --rounds must be >= 1, --value-size >= 0")

    ks, vals, read_order = make_data(args.keys, args.value_size, args.seed)
    best = {"raw": {"put": 0.0, "get": 0.0}, "ringkv": {"put": 0.0, "get": 0.0}}
    for _ in range(args.rounds):
        for name, fn in (("raw", bench_raw), ("ringkv", bench_ringkv)):
            tmp = tempfile.mkdtemp(prefix=f"ringkv-bench-{name}-")
            try:
                res = fn(os.path.join(tmp, "db"), ks, vals, read_order)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            for op in ("put", "get"):
                best[name][op] = max(best[name][op], res[op])

    ratio = {op: best["ringkv"][op] / best["raw"][op] for op in ("put", "get")}
    print(f"keys={args.keys} value_size={args.value_size} seed={args.seed} rounds={args.rounds}")
    print(f"{'':8}{'put ops/s':>14}{'get ops/s':>14}")
    for name in ("raw", "ringkv"):
        print(f"{name:8}{best[name]['put']:>14,.0f}{best[name]['get']:>14,.0f}")
    print(f"{'ratio':8}{ratio['put']:>13.2f}x{ratio['get']:>13.2f}x   (ringkv / raw; target >= 0.50x)")

    if args.json:
        doc = {
            "benchmark": "embedded",
            "params": {"keys": args.keys, "value_size": args.value_size, "seed": args.seed, "rounds": args.rounds},
            "ops_per_sec": best,
            "ratio_ringkv_over_raw": ratio,
            "env": describe_environment({"rocksdict": package_version("rocksdict")}),
        }
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
