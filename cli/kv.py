"""``ringkv put`` / ``get`` / ``delete``: one key of one keyspace."""

from __future__ import annotations

import argparse
import os
import sys

from ringkv.cli import exits
from ringkv.cli.output import context_arg, context_text, encode_values, print_json, shown_value, write_line, write_value
from ringkv.cli.target import cluster_addrs, open_target
from ringkv.keyspaces import DEFAULT_KEYSPACE

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("key", metavar="KEY", help="the key (text; stored as its UTF-8 bytes)")
        p.add_argument("-k", "--keyspace", metavar="KS", default=DEFAULT_KEYSPACE, help="keyspace (default: %(default)s)")

    p = sub.add_parser("put", parents=parents, help="store a value", description="Store VALUE under KEY.")
    common(p)
    p.add_argument("value", metavar="VALUE", nargs="?", help="the value (text); or use --file")
    p.add_argument("--file", metavar="PATH", help="read the value's bytes from PATH ('-' for stdin)")
    p.add_argument("--context", metavar="CTX", type=context_arg, help="context from `ringkv get`: supersede exactly what that read saw")
    p.add_argument("--w", type=int, metavar="W", help="write quorum for this call (default: the keyspace's)")
    p.add_argument("--timestamp", type=int, metavar="MS", help="event time in ms since the epoch (lww keyspaces only)")
    p.set_defaults(func=cmd_put)

    p = sub.add_parser("get", parents=parents, help="read a value (or its siblings)", description="Read KEY. Exit status 1 if it does not exist.")
    common(p)
    p.add_argument("--r", type=int, metavar="R", help="read quorum for this call (default: the keyspace's)")
    p.add_argument("--raw", action="store_true", help="write only the value's exact bytes (an error if there are siblings)")
    p.add_argument("--local", action="store_true", help="with --connect: exactly what that one node's replica stores (no quorum, no read repair)")
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("delete", parents=parents, help="delete a key", description="Delete KEY (deleting a missing key is not an error).")
    common(p)
    p.add_argument("--context", metavar="CTX", type=context_arg, help="context from `ringkv get`: delete exactly what that read saw")
    p.add_argument("--w", type=int, metavar="W", help="write quorum for this call (default: the keyspace's)")
    p.set_defaults(func=cmd_delete)


def _key(args: argparse.Namespace) -> bytes:
    # fsencode gives back the exact argv bytes, even when they are not UTF-8.
    return os.fsencode(args.key)


def _read_value(args: argparse.Namespace) -> bytes:
    if (args.value is None) == (args.file is None):
        raise exits.UsageError("give the value either as VALUE or with --file, exactly one")
    if args.file is None:
        return os.fsencode(args.value)
    if args.file == "-":
        return sys.stdin.buffer.read()
    with open(args.file, "rb") as f:
        return f.read()


def cmd_put(args: argparse.Namespace) -> int:
    value = _read_value(args)
    with open_target(args) as db:
        db.keyspace(args.keyspace).put(_key(args), value, args.context, w=args.w, timestamp=args.timestamp)
    if args.json:
        print_json({"key": args.key, "keyspace": args.keyspace, "ok": True})
    return exits.OK


def cmd_delete(args: argparse.Namespace) -> int:
    with open_target(args) as db:
        db.keyspace(args.keyspace).delete(_key(args), args.context, w=args.w)
    if args.json:
        print_json({"key": args.key, "keyspace": args.keyspace, "ok": True})
    return exits.OK


def cmd_get(args: argparse.Namespace) -> int:
    if args.local:
        if args.r is not None:
            raise exits.UsageError("--local reads one replica; --r does not apply")
        node = cluster_addrs(args, "get --local")[0]
        with open_target(args) as db:
            res = db.keyspace(args.keyspace).get_local(_key(args), node=node)
    else:
        with open_target(args, create=False) as db:
            res = db.keyspace(args.keyspace).get(_key(args), r=args.r)
    if res is None:
        sys.stderr.write(f"error: key {args.key!r} not found in keyspace {args.keyspace!r}\n")
        return exits.NOT_FOUND
    if args.raw:
        if res.siblings:
            raise exits.CommandError(f"key {args.key!r} has {len(res.values)} siblings; --raw needs one value (see them with `ringkv get` or --json)")
        write_value(res.value, newline=False)
        return exits.OK
    if args.json:
        values, encoding = encode_values(res.values)
        print_json(
            {
                "key": args.key,
                "keyspace": args.keyspace,
                "values": values,
                "encoding": encoding,
                "context": context_text(res.context),
                "siblings": res.siblings,
            }
        )
        return exits.OK
    if res.siblings:
        write_line(f"{len(res.values)} siblings (concurrent writes); resolve with: ringkv put KEY VALUE --context CTX")
        for i, v in enumerate(res.values, 1):
            write_value(f"sibling {i}: ".encode() + _shown(v))
    else:
        write_value(_shown(res.value))
    write_line(f"context: {context_text(res.context)}")
    return exits.OK


def _shown(value: bytes) -> bytes:
    """A value for a human: its text, or a base64 rendering if it is not UTF-8."""
    return shown_value(value)
