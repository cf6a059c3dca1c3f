"""``ringkv keyspace create|list|drop``: keyspace definitions."""

from __future__ import annotations

import argparse

from ringkv.cli import exits
from ringkv.cli.output import keyspace_table, print_json, stdout_console
from ringkv.cli.target import open_target
from ringkv.keyspaces import CONFLICT_MODES

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    ks = sub.add_parser("keyspace", help="create, list or drop keyspaces", description="Manage keyspaces.")
    ks_sub = ks.add_subparsers(dest="keyspace_command", metavar="ACTION", required=True)

    p = ks_sub.add_parser("create", parents=parents, help="create a keyspace", description="Create keyspace NAME.")
    p.add_argument("name", metavar="NAME", help="1-64 letters, digits, '_', '.' or '-'")
    p.add_argument("--n", type=int, metavar="N", help="replicas per key (default: 1 embedded; 3 in a cluster)")
    p.add_argument("--r", type=int, metavar="R", help="read quorum (default: 1 embedded; 2 in a cluster, at most N)")
    p.add_argument("--w", type=int, metavar="W", help="write quorum (default: 1 embedded; 2 in a cluster, at most N)")
    p.add_argument("--conflict", choices=CONFLICT_MODES, default="siblings", help="keep concurrent writes as siblings, or last-write-wins (default: %(default)s)")
    p.set_defaults(func=cmd_create)

    p = ks_sub.add_parser("list", parents=parents, help="list keyspaces", description="List keyspaces.")
    p.set_defaults(func=cmd_list)

    p = ks_sub.add_parser("drop", parents=parents, help="drop a keyspace and all its data", description="Drop keyspace NAME and all its data.")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_drop)


def cmd_create(args: argparse.Namespace) -> int:
    with open_target(args) as db:
        info = db.keyspace_create(args.name, n=args.n, r=args.r, w=args.w, conflict=args.conflict)
    if args.json:
        print_json(info.to_dict())
    else:
        stdout_console().print(f"created keyspace {info.name} (n={info.n} r={info.r} w={info.w}, conflict={info.conflict})", markup=False)
    return exits.OK


def cmd_list(args: argparse.Namespace) -> int:
    with open_target(args, create=False) as db:
        infos = db.keyspaces()
    if args.json:
        print_json({"keyspaces": [info.to_dict() for info in infos]})
    else:
        stdout_console().print(keyspace_table(infos))
    return exits.OK


def cmd_drop(args: argparse.Namespace) -> int:
    with open_target(args, create=False) as db:
        db.keyspace_drop(args.name)
    if args.json:
        print_json({"dropped": args.name})
    else:
        stdout_console().print(f"dropped keyspace {args.name}", markup=False)
    return exits.OK
