"""``ringkv bench``: YCSB-style workloads against ringkv and its baselines (see ringkv.ycsb)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ringkv import ycsb  # the harness is large: import it only for this command's parser

    p = sub.add_parser(
        "bench",
        help="run YCSB-style workloads (A/B/C/F, feeds) and compare with baselines",
        description="YCSB core workloads against an embedded database, an in-process node or a cluster, "
        "beside raw rocksdict, redis-server (redis.asyncio) and raw pyzmq in the same run.",
    )
    ycsb.build_parser(p)
