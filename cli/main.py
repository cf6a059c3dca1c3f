"""``ringkv``: parser, dispatch, exit codes and error printing.

Exit codes (see :mod:`ringkv.cli.exits`): 0 ok, 1 key not found (``get``),
2 usage error, 3 any other error. Errors are one ``error: ...`` line on
stderr, never a traceback; set ``RINGKV_DEBUG=1`` to see the traceback of
an unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ringkv import __version__
from ringkv.cli import bench, cluster, demo, dump, exits, feeds, keyspace, kv, repair, serve
from ringkv.cli.target import add_target_options
from ringkv.errors import RingKVError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ringkv",
        description="ringkv: a Dynamo-style, leaderless, replicated key-value store.",
        epilog="Exit status: 0 ok, 1 key not found, 2 usage error, 3 other error.",
    )
    parser.add_argument("--version", action="version", version=f"ringkv {__version__}")
    add_target_options(parser, top=True)

    # Options every data command takes after its name: the target and --json.
    data = argparse.ArgumentParser(add_help=False)
    add_target_options(data)
    data.add_argument("--json", action="store_true", help="print JSON for scripts")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve.register(sub)
    demo.register(sub)
    kv.register(sub, [data])
    keyspace.register(sub, [data])
    feeds.register(sub, [data])
    dump.register(sub)
    cluster.register(sub)
    repair.register(sub)
    bench.register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error, 0 on --help/--version
    try:
        return args.func(args)
    except exits.UsageError as exc:
        return _fail(str(exc), exits.USAGE)
    except (RingKVError, OSError, exits.CommandError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        return _fail(_one_line(exc), exits.ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", exits.INTERRUPTED)
    except Exception as exc:
        if os.environ.get("RINGKV_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {_one_line(exc)} (set RINGKV_DEBUG=1 for a traceback)", exits.ERROR)


def _broken_pipe() -> int:
    """The reader went away (``ringkv ... | head``): stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
