"""``ringkv serve`` (and ``join``, ``replace``): run one cluster node in the foreground.

The node runs on this process's asyncio loop until SIGINT or SIGTERM (a
clean stop, exit 0) or until it leaves the cluster (``ringkv leave``). The
first line on stdout, ``ringkv node ID listening on ADDR``, says it serves
requests: scripts and tests wait for it. Membership and liveness changes are
logged to stderr, one timestamped line each.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

import ringkv
from ringkv import runtime
from ringkv.cli import exits
from ringkv.cli.target import ENV_DATA_DIR

__all__ = ["register", "serve"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _node_options(p: argparse.ArgumentParser, *, seed_required: bool = False, replace: bool = True) -> None:
    p.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS, help=f"the node's data directory, created if missing (env {ENV_DATA_DIR})")
    p.add_argument("--listen", metavar="ADDR", default="tcp://127.0.0.1:7100", help="ZeroMQ endpoint to listen on; port 0 picks a free one (default: %(default)s)")
    p.add_argument(
        "--seed", metavar="ADDR", action="append", default=[], required=seed_required,
        help="address of a member to join through (repeatable)" + (" (required)" if seed_required else ""),
    )
    p.add_argument("--node-id", metavar="ID", help="fixed node id (default: made once and kept in the data directory)")
    p.add_argument("--vnodes", type=int, metavar="N", default=128, help="ring tokens for a new node (default: %(default)s)")
    p.add_argument("--join-wait", type=float, metavar="SECONDS", default=10.0, help="how long a new node tries to reach its seeds before giving up (default: %(default)g)")
    if replace:
        p.add_argument("--replace", metavar="NODE_ID", help="take over a dead member: its tokens, and its data streamed from the surviving replicas")
    p.add_argument("--stream-mb-per-s", type=float, metavar="MB", help="cap on the bandwidth of range streaming (join, leave, replace, re-replication)")
    p.add_argument("--fsync", action="store_true",
                   help="acknowledge writes only once they are on disk (survive power loss); writes of one loop turn share one fsync")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"), help="stderr log level (default: %(default)s)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run a cluster node in the foreground",
        description="Run one cluster node in the foreground. Stop it with Ctrl-C or SIGTERM.",
    )
    _node_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "join",
        help="run a new node that joins a cluster (serve with --seed)",
        description=(
            "Run a node in the foreground that joins the cluster through --seed: with an empty data directory it is a "
            "pending owner while it streams its ranges from the current owners, then it goes up (see `ringkv status`). "
            "The same as `ringkv serve --seed ADDR`; on a directory that already holds a member it simply restarts it."
        ),
    )
    _node_options(p, seed_required=True, replace=False)
    p.set_defaults(func=cmd_serve, replace=None)

    p = sub.add_parser(
        "replace",
        help="run a new node that takes over a dead member (serve --replace)",
        description=(
            "Run a node in the foreground that takes over member NODE_ID, which must be down: the new node gets its "
            "tokens, marks it removed and pulls its data from the surviving replicas. "
            "The same as `ringkv serve --replace NODE_ID --seed ADDR`."
        ),
    )
    p.add_argument("replace", metavar="NODE_ID", help="the dead member to take over")
    _node_options(p, seed_required=True, replace=False)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    data_dir = getattr(args, "data_dir", None) or os.environ.get(ENV_DATA_DIR)
    if not data_dir:
        raise exits.UsageError(f"serve needs --data-dir DIR (or {ENV_DATA_DIR})")
    if getattr(args, "connect", None):
        raise exits.UsageError("serve runs a node; --connect does not apply")
    if not 0 < args.join_wait <= 3600:
        raise exits.UsageError("--join-wait must be in (0, 3600] seconds")
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format=LOG_FORMAT)
    runtime.tune_process()
    extra = {}
    if args.replace:
        extra["replace"] = args.replace
    if args.stream_mb_per_s:
        extra["stream_mb_per_s"] = args.stream_mb_per_s
    if args.fsync:
        extra["fsync"] = True
    node = ringkv.Node(data_dir, listen=args.listen, seeds=args.seed, node_id=args.node_id, vnodes=args.vnodes, join_wait=args.join_wait, **extra)
    return runtime.run(serve(node))


async def serve(node: ringkv.Node) -> int:
    """Start ``node``, announce it, and run it until a signal or until it leaves."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.ensure_future(node.astart())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # a signal during the join: give up quietly
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return exits.OK
        starting.result()  # raises the start error (address in use, no seed...)
        sys.stdout.write(f"ringkv node {node.node_id} listening on {node.address}\n")
        sys.stdout.flush()
        left = asyncio.ensure_future(node.server.wait_stopped())
        await asyncio.wait([stopping, left], return_when=asyncio.FIRST_COMPLETED)
        if left.done() and not stopping.done():
            logging.getLogger("ringkv.node").info("node %s left the cluster; stopping", node.node_id)
        for t in (stopping, left):
            t.cancel()
        await node.astop()
        return exits.OK
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
