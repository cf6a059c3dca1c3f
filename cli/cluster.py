"""``ringkv status``, ``ring``, ``remove`` and ``leave``: the cluster as one node sees it.

These commands talk to one node (the first ``--connect`` address that
answers) and show or change its view of the membership.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Awaitable, Callable, TypeVar

from rich.table import Table

import ringkv
from ringkv.cli import exits
from ringkv.cli.output import print_json, stdout_console
from ringkv.cli.target import add_target_options, cluster_addrs, timeout_of
from ringkv.errors import BadRequest, NotFound, RingKVError, Timeout, Unavailable
from ringkv.node_messages import ClusterView, Leave, RemoveMember
from ringkv.ring import Ring

__all__ = ["register", "fetch_status", "fetch_ring", "status_table"]

T = TypeVar("T")
_NOT_IN_RING = ("left", "removed")


def register(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_target_options(common)

    json_opt = argparse.ArgumentParser(add_help=False)
    json_opt.add_argument("--json", action="store_true", help="print JSON for scripts")

    p = sub.add_parser("status", parents=[common, json_opt], help="members, liveness, ownership, keys and hints", description="Show the cluster as the node at --connect sees it.")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("ring", parents=[common, json_opt], help="tokens and owned ranges per member", description="Show the ring: tokens and owned fraction per member (--json: every token).")
    p.add_argument("--n", type=int, metavar="N", default=3, help="also show the share of the ring each member holds as one of N replicas (default: %(default)s)")
    p.set_defaults(func=cmd_ring)

    p = sub.add_parser(
        "remove",
        parents=[common, json_opt],
        help="mark a dead member removed",
        description=(
            "Mark member NODE_ID removed from the cluster for good. Only a member that is down can be removed; "
            "a live one should `ringkv leave`. The remaining nodes then copy the ranges they gained from the surviving replicas."
        ),
    )
    p.add_argument("node_id", metavar="NODE_ID")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser(
        "leave",
        parents=[common, json_opt],
        help="make the node at --connect leave the cluster and stop",
        description=(
            "Ask the node at --connect to leave the cluster: it shows as leaving while it hands its ranges to their "
            "new owners, then it marks itself left and stops. `ringkv status` shows the progress."
        ),
    )
    p.set_defaults(func=cmd_leave)


# -- talking to one node -----------------------------------------------------


def _on_cluster(args: argparse.Namespace, command: str, action: Callable[[ringkv.AsyncClient, str], Awaitable[T]], *, first_only: bool = False) -> T:
    """Run ``action(client, addr)`` against the first ``--connect`` node that answers.

    ``first_only``: the command is about that one node (``leave``, ``remove``
    as decided by it), so never fall back to another address.
    """
    addrs = cluster_addrs(args, command)
    targets = addrs[:1] if first_only else addrs

    async def go() -> T:
        client = await ringkv.connect_async(addrs, timeout=timeout_of(args))
        try:
            last: RingKVError = Unavailable("no node answered")
            for addr in targets:
                try:
                    return await action(client, addr)
                except (Timeout, Unavailable) as exc:
                    last = exc
            raise last
        finally:
            await client.aclose()

    return asyncio.run(go())


async def fetch_status(client: ringkv.AsyncClient, addr: str) -> dict:
    """The status dict of the node at ``addr`` (see ``ringkv status --json``)."""
    return await client.astatus(addr)


async def fetch_ring(client: ringkv.AsyncClient, addr: str, n: int = 3) -> dict:
    """The ring as the node at ``addr`` sees it, with every token per member."""
    view = await client.call(ClusterView(), addr=addr)
    members = [
        {"node_id": m[0], "addr": m[1], "tokens": sorted(m[2]), "status": m[3], "liveness": m[4]}
        for m in sorted(view.members, key=lambda m: m[0])  # type: ignore[attr-defined]
    ]
    ring = Ring({m["node_id"]: m["tokens"] for m in members if m["status"] in ("up", "leaving") and m["tokens"]})
    primary = ring.ownership() if len(ring) else {}
    replicated = ring.ownership(min(n, len(ring))) if len(ring) else {}
    for m in members:
        m["ownership"] = primary.get(m["node_id"], 0.0)
        m["replica_ownership"] = replicated.get(m["node_id"], 0.0)
    return {"node_id": view.node_id, "n": n, "members": members}  # type: ignore[attr-defined]


# -- commands ------------------------------------------------------------------


def _pct(fraction: Any) -> str:
    return f"{100 * fraction:.1f}%" if isinstance(fraction, (int, float)) else "-"


def _count(value: Any) -> str:
    return "-" if value is None else str(value)


_STYLE = {"alive": "green", "suspect": "yellow", "down": "bold red", "up": "green", "joining": "cyan", "leaving": "yellow", "left": "dim", "removed": "dim"}


def _styled(word: str) -> str:
    style = _STYLE.get(word)
    return f"[{style}]{word}[/{style}]" if style else word


def status_table(status: dict) -> Table:
    """A rich table of a status dict (also used by ``ringkv demo``)."""
    table = Table(title=f"cluster seen from {status['node_id']} ({status['addr']})")
    table.add_column("node_id", style="bold")
    table.add_column("addr")
    table.add_column("status")
    table.add_column("liveness")
    for col in ("tokens", "ownership", "keys", "hints"):
        table.add_column(col, justify="right")
    for m in status["members"]:
        table.add_row(
            m["node_id"], m["addr"], _styled(m["status"]), _styled(m["liveness"]),
            str(m["tokens"]), _pct(m["ownership"]), _count(m["keys"]), _count(m["hints"]),
        )
    return table


def cmd_status(args: argparse.Namespace) -> int:
    status = _on_cluster(args, "status", fetch_status)
    if args.json:
        print_json(status)
    else:
        stdout_console().print(status_table(status))
    return exits.OK


def cmd_ring(args: argparse.Namespace) -> int:
    if not 1 <= args.n <= 16:
        raise exits.UsageError("--n must be between 1 and 16")
    ring = _on_cluster(args, "ring", lambda c, a: fetch_ring(c, a, args.n))
    if args.json:
        print_json(ring)
        return exits.OK
    table = Table(title=f"ring seen from {ring['node_id']}")
    table.add_column("node_id", style="bold")
    table.add_column("addr")
    table.add_column("status")
    table.add_column("tokens", justify="right")
    table.add_column("owned", justify="right")
    table.add_column(f"held (N={ring['n']})", justify="right")
    for m in ring["members"]:
        table.add_row(m["node_id"], m["addr"], _styled(m["status"]), str(len(m["tokens"])), _pct(m["ownership"]), _pct(m["replica_ownership"]))
    stdout_console().print(table)
    return exits.OK


def cmd_remove(args: argparse.Namespace) -> int:
    async def remove(client: ringkv.AsyncClient, addr: str) -> None:
        status = await client.astatus(addr)
        member = next((m for m in status["members"] if m["node_id"] == args.node_id), None)
        if member is None:
            raise NotFound(f"no member {args.node_id!r} in the cluster seen from {status['node_id']}")
        if member["node_id"] == status["node_id"] or member["liveness"] != "down":
            raise BadRequest(f"member {args.node_id} is {member['liveness']}; only a down member can be removed (stop it, or use `ringkv leave --connect {member['addr']}`)")
        await client.call(RemoveMember(args.node_id), addr=addr)

    _on_cluster(args, "remove", remove, first_only=True)
    if args.json:
        print_json({"removed": args.node_id, "ok": True})
    else:
        stdout_console().print(f"member {args.node_id} marked removed", markup=False)
    return exits.OK


def cmd_leave(args: argparse.Namespace) -> int:
    async def leave(client: ringkv.AsyncClient, addr: str) -> str:
        status = await client.astatus(addr)
        await client.call(Leave(), addr=addr)
        return status["node_id"]

    node_id = _on_cluster(args, "leave", leave, first_only=True)
    if args.json:
        print_json({"left": node_id, "ok": True})
    else:
        stdout_console().print(f"node {node_id} is leaving the cluster and will stop", markup=False)
    return exits.OK
