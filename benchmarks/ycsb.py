"""YCSB-style workloads (A, B, C, F, feeds) on ringkv beside its baselines, in the same run.

    python benchmarks/ycsb.py                                  # embedded vs raw rocksdict
    python benchmarks/ycsb.py --local-cluster 3 --json benchmarks/results/ycsb-cluster.json \\
                              --plot benchmarks/results/ycsb-cluster.png   # 3 nodes vs redis + pyzmq floor

A thin runner of :mod:`ringkv.ycsb` (the same harness as ``ringkv bench``);
``--help`` lists every option. Unlike ``ringkv bench``, it installs a missing
redis-server / redis-py with ``benchmarks/setup_redis.sh`` (``--no-setup-redis``
to skip that; the redis baseline is then skipped with the reason printed).
"""

from __future__ import annotations

import argparse
import sys

from ringkv.ycsb import build_parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                                  formatter_class=argparse.RawDescriptionHelpFormatter))
    parser.add_argument("--no-setup-redis", dest="setup_redis", action="store_false",
                        help="do not run benchmarks/setup_redis.sh when redis is missing")
    parser.set_defaults(setup_redis=True)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
