"""``ringkv status``, ``ring``, ``remove`` and ``leave``: the cluster as one node sees it.

These commands talk to one node (the first ``--connect`` address that
answers) and show or change its view of the membership. ``leave`` and
``remove`` then follow the range streaming they cause (the status dicts'
``elastic.transfers``, see :mod:`ringkv.cli.transfers`) until it is over,
unless ``--no-wait``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Awaitable, Callable, Optional, TypeVar

from rich.console import Console
from rich.table import Table

import ringkv
from ringkv.cli import exits
from ringkv.cli.output import human_bytes, print_json, stdout_console
from ringkv.cli.transfers import TransferWatch, leave_plan, progress_display, remove_plan, transfers_table
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
            "a live one should `ringkv leave`. The remaining nodes then copy the ranges they gained from the surviving replicas; "
            "the command shows that streaming's progress until every live member is done (--no-wait: return at once)."
        ),
    )
    p.add_argument("node_id", metavar="NODE_ID")
    p.add_argument("--no-wait", action="store_true", help="return once the member is marked removed, without waiting for the re-replication")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser(
        "leave",
        parents=[common, json_opt],
        help="make the node at --connect leave the cluster and stop",
        description=(
            "Ask the node at --connect to leave the cluster: it shows as leaving while it hands its ranges to their "
            "new owners, then it marks itself left and stops. The command shows the streaming's progress until the "
            "node is left (Ctrl-C stops watching, not the leave); with --no-wait it returns at once and `ringkv status "
            "--connect ADDR` shows the progress."
        ),
    )
    p.add_argument("--no-wait", action="store_true", help="return once the node has started leaving")
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
        console = stdout_console()
        console.print(status_table(status))
        transfers = transfers_table(status)
        if transfers is not None:
            console.print(transfers)
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


# -- leave and remove, with the streaming's progress ------------------------------

#: Seconds between two looks at the transfers.
POLL = 0.25
#: Looks in a row a member may fail to answer before remove stops waiting for it.
MISSES = 8


def _view_members(view: Any) -> list[list]:
    return [list(m) for m in view.members]


async def _transfers_of(client: ringkv.AsyncClient, addr: str) -> Optional[dict]:
    try:
        return await client.astatus(addr)
    except (Timeout, Unavailable):
        return None


def cmd_remove(args: argparse.Namespace) -> int:
    console = stdout_console()

    async def remove(client: ringkv.AsyncClient, addr: str) -> dict:
        status = await client.astatus(addr)
        member = next((m for m in status["members"] if m["node_id"] == args.node_id), None)
        if member is None:
            raise NotFound(f"no member {args.node_id!r} in the cluster seen from {status['node_id']}")
        if member["node_id"] == status["node_id"] or member["liveness"] != "down":
            raise BadRequest(f"member {args.node_id} is {member['liveness']}; only a down member can be removed (stop it, or use `ringkv leave --connect {member['addr']}`)")
        live = {m["node_id"]: m["addr"] for m in status["members"] if m["node_id"] != args.node_id and m["status"] in ("up", "joining", "leaving") and m["liveness"] == "alive"}
        watch = None
        if not args.no_wait:
            view = await client.call(ClusterView(), addr=addr)
            plan = remove_plan(_view_members(view), status["keyspaces"], args.node_id, live)
            counts = [m["keys"] for m in status["members"] if m["node_id"] in live and m["keys"] is not None]
            # the removed member held about what a live one holds; it is down, so it cannot say
            watch = TransferWatch(plan.span, plan.share * sum(counts) / len(counts) if counts else 0.0)
            for node_id, a in live.items():
                st = status if a == addr else await _transfers_of(client, a)
                if st is not None:
                    watch.baseline(node_id, st["elastic"]["transfers"])
        await client.call(RemoveMember(args.node_id), addr=addr)
        if watch is None:
            return {}
        if not args.json:
            console.print(f"member {args.node_id} marked removed; {len(live)} members copy the ranges it held from the surviving replicas", markup=False)
        missing = await _watch_rereplication(client, args.node_id, live, watch, console, quiet=args.json)
        return {"watch": watch, "missing": missing}

    outcome = _on_cluster(args, "remove", remove, first_only=True)
    if args.no_wait:
        if args.json:
            print_json({"removed": args.node_id, "ok": True, "waited": False})
        else:
            console.print(f"member {args.node_id} marked removed", markup=False)
        return exits.OK
    watch, missing = outcome["watch"], outcome["missing"]
    s = watch.totals()
    failed = watch.failed()
    if args.json:
        print_json(
            {
                "removed": args.node_id, "ok": not failed, "waited": True, "keys": s["keys"], "bytes": s["bytes"],
                "transfers": s["transfers"], "seconds": round(s["seconds"], 3), "not_answering": missing,
                "failed": [t["error"] for t in failed],
            }
        )
    else:
        console.print(
            f"member {args.node_id} removed: {s['keys']:,} keys ({human_bytes(s['bytes'])}) re-replicated in "
            f"{s['transfers']} range transfers in {s['seconds']:.1f}s",
            markup=False,
        )
        for node_id in missing:
            console.print(f"warning: member {node_id} stopped answering; its share was not checked", markup=False)
    if failed:
        raise exits.CommandError(f"re-replication gave up on {len(failed)} ranges (last error: {failed[-1]['error']}); `ringkv repair` can copy them later")
    return exits.OK


async def _watch_rereplication(client: ringkv.AsyncClient, removed: str, live: dict[str, str], watch: TransferWatch, console: Console, quiet: bool) -> list[str]:
    """Poll every live member until each sees the removal and has gone back to ``idle``; returns the ones that stopped answering."""
    misses = dict.fromkeys(live, 0)
    settled = 0
    with progress_display(console if not quiet else Console(quiet=True)) as progress:
        task = progress.add_task("re-replicating", total=1.0, detail="")
        while True:
            done = True
            for node_id, addr in live.items():
                if misses[node_id] >= MISSES:
                    continue
                st = await _transfers_of(client, addr)
                if st is None:
                    misses[node_id] += 1
                    done = done and misses[node_id] >= MISSES
                    continue
                misses[node_id] = 0
                watch.update(node_id, st["elastic"]["transfers"])
                sees_removed = any(m["node_id"] == removed and m["status"] == "removed" for m in st["members"])
                if not sees_removed or st["elastic"]["state"] != "idle":
                    done = False
            progress.update(task, completed=1.0 if done else watch.totals()["fraction"], detail=watch.detail(finished=done))
            settled = settled + 1 if done else 0
            if settled >= 2:  # twice in a row: a member that just learnt the removal has started pulling
                return [n for n, k in misses.items() if k >= MISSES]
            await asyncio.sleep(POLL)  # polling interval of the progress display


def cmd_leave(args: argparse.Namespace) -> int:
    console = stdout_console()

    async def leave(client: ringkv.AsyncClient, addr: str) -> dict:
        status = await client.astatus(addr)
        node_id = status["node_id"]
        if status["elastic"]["state"] == "left":
            return {"node_id": node_id, "already": True}
        watch = None
        if not args.no_wait:
            view = await client.call(ClusterView(), addr=addr)
            plan = leave_plan(_view_members(view), status["keyspaces"], node_id)
            keys = next((m["keys"] for m in status["members"] if m["node_id"] == node_id), None) or 0
            watch = TransferWatch(plan.span, plan.share * keys)
            watch.baseline(node_id, status["elastic"]["transfers"])
        await client.call(Leave(), addr=addr)
        if watch is None:
            return {"node_id": node_id}
        if not args.json:
            console.print(f"node {node_id} is leaving the cluster and will stop", markup=False)
        others = [m["addr"] for m in status["members"] if m["node_id"] != node_id and m["status"] in ("up", "joining") and m["liveness"] == "alive"]
        await _watch_leave(client, addr, node_id, others, watch, console, quiet=args.json)
        return {"node_id": node_id, "watch": watch}

    outcome = _on_cluster(args, "leave", leave, first_only=True)
    node_id = outcome["node_id"]
    watch = outcome.get("watch")
    if watch is None:
        if args.json:
            print_json({"left": node_id, "ok": True, "waited": False})
        elif outcome.get("already"):
            console.print(f"node {node_id} has already left the cluster", markup=False)
        else:
            console.print(f"node {node_id} is leaving the cluster and will stop", markup=False)
        return exits.OK
    s = watch.totals()
    if args.json:
        print_json(
            {
                "left": node_id, "ok": True, "waited": True, "keys": s["keys"], "bytes": s["bytes"],
                "transfers": s["transfers"], "peers": s["peers"], "seconds": round(s["seconds"], 3),
            }
        )
    else:
        console.print(
            f"node {node_id} left the cluster: {s['keys']:,} keys ({human_bytes(s['bytes'])}) handed to "
            f"{len(s['peers'])} members in {s['transfers']} range transfers in {s['seconds']:.1f}s; it stops now",
            markup=False,
        )
    return exits.OK


async def _watch_leave(client: ringkv.AsyncClient, addr: str, node_id: str, others: list[str], watch: TransferWatch, console: Console, quiet: bool) -> None:
    """Poll the leaving node until it is ``left``; if it stops answering first, ask the others."""
    with progress_display(console if not quiet else Console(quiet=True)) as progress:
        task = progress.add_task(f"leaving {node_id}", total=1.0, detail="")
        while True:
            st = await _transfers_of(client, addr)
            if st is None:
                break
            watch.update(node_id, st["elastic"]["transfers"])
            me = next((m for m in st["members"] if m["node_id"] == node_id), {})
            left = st["elastic"]["state"] == "left" or me.get("status") == "left"
            progress.update(task, completed=1.0 if left else watch.totals()["fraction"], detail=watch.detail(finished=left))
            if left:
                return
            await asyncio.sleep(POLL)  # polling interval of the progress display
    # it stopped answering before we saw it left: the others know how it ended
    for other in others:
        st = await _transfers_of(client, other)
        if st is None:
            continue
        seen = next((m["status"] for m in st["members"] if m["node_id"] == node_id), None)
        if seen == "left":
            return
        raise exits.CommandError(f"node {node_id} stopped answering before it finished leaving (seen as {seen} by {st['node_id']})")
    raise exits.CommandError(f"node {node_id} stopped answering before it finished leaving, and no other member answered")
