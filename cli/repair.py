"""``ringkv repair``: one anti-entropy pass now, on one node or on every node.

The node compares its hash trees with every peer it shares replica ranges
with, repairs the keys that differ (both sides end with the merge), then
purges the tombstones every replica holds. The command waits for the pass
(a spinner meanwhile) and prints its statistics.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

import ringkv
from ringkv.cli import exits
from ringkv.cli.output import print_json, stdout_console
from ringkv.cli.target import add_target_options, cluster_addrs, timeout_of

__all__ = ["register", "STATS"]

#: The statistics shown, in order (the JSON holds every counter of the pass).
STATS = ("ranges_compared", "segments_differing", "keys_repaired", "tombstones_purged", "seconds")
#: Deadline of one pass unless --timeout is given.
PASS_TIMEOUT = 600.0


def register(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_target_options(common)
    p = sub.add_parser(
        "repair",
        parents=[common],
        help="run an anti-entropy pass now and print what it repaired",
        description=(
            "Run one anti-entropy pass on the node at --connect (with --all: on every live member in turn): compare "
            "replicas range by range, repair the keys that differ and purge tombstones every replica holds. "
            f"--timeout bounds each pass (default here: {PASS_TIMEOUT:g}s)."
        ),
    )
    p.add_argument("-k", "--keyspace", metavar="KS", help="only this keyspace (default: all)")
    p.add_argument("--all", action="store_true", help="run a pass on every live member, one after the other")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_repair)


def _run_repair():
    """``ringkv.repair.run_repair``, or a clear error if this build has none."""
    try:
        from ringkv.repair import run_repair
    except ImportError:
        raise exits.CommandError("this ringkv has no anti-entropy repair (ringkv.repair.run_repair is missing)") from None
    return run_repair


def cmd_repair(args: argparse.Namespace) -> int:
    addrs = cluster_addrs(args, "repair")
    run_repair = _run_repair()
    deadline = getattr(args, "timeout", None) or PASS_TIMEOUT
    console = stdout_console()

    async def go() -> list[dict]:
        client = await ringkv.connect_async(addrs, timeout=timeout_of(args))
        try:
            if args.all:
                status = await client.astatus()
                targets = [(m["node_id"], m["addr"]) for m in status["members"] if m["status"] in ("up", "joining", "leaving") and m["liveness"] == "alive"]
            else:
                status = await client.astatus(addrs[0])
                targets = [(status["node_id"], addrs[0])]
            out = []
            with _spinner(console if not args.json else Console(quiet=True)) as progress:
                for node_id, addr in targets:
                    task = progress.add_task(f"anti-entropy pass on {node_id} ({addr})")
                    stats = await run_repair(client, addr, args.keyspace, timeout=deadline)
                    progress.update(task, description=f"anti-entropy pass on {node_id}: {stats.get('keys_repaired', 0)} keys repaired")
                    progress.stop_task(task)
                    out.append({"node_id": node_id, "addr": addr, **stats})
            return out
        finally:
            await client.aclose()

    passes = asyncio.run(go())
    total = _total(passes)
    if args.json:
        if args.all:
            print_json({"keyspace": args.keyspace, "nodes": passes, "total": total})
        else:
            print_json({"keyspace": args.keyspace, **passes[0]})
        return exits.OK
    console.print(_table(passes, total, args.keyspace))
    return exits.OK


def _spinner(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)


def _total(passes: list[dict]) -> dict[str, Any]:
    keys = [k for k, v in passes[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)] if passes else list(STATS)
    return {k: round(sum(p.get(k, 0) for p in passes), 6) for k in keys}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(passes: list[dict], total: dict, keyspace: str | None) -> Table:
    scope = f"keyspace {keyspace}" if keyspace else "all keyspaces"
    table = Table(title=f"anti-entropy pass ({scope})")
    table.add_column("node", style="bold")
    for k in STATS:
        table.add_column(k.replace("_", " "), justify="right")
    for p in passes:
        table.add_row(p["node_id"], *(_fmt(p.get(k, 0)) for k in STATS))
    if len(passes) > 1:
        table.add_row("total", *(_fmt(total.get(k, 0)) for k in STATS), style="bold")
    return table
