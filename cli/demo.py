"""``ringkv demo``: a guided tour of the embedded store in a temporary directory.

Shows put/get, siblings from concurrent writes and their resolution, delete,
a last-write-wins keyspace, and persistence across a reopen. Everything runs
in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import tempfile

from rich.console import Console
from rich.table import Table

import ringkv
from ringkv.cli import exits
from ringkv.cli.output import context_text, keyspace_table
from ringkv.result import Result

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a guided tour in a temporary directory", description=__doc__.splitlines()[0])
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    run(Console(highlight=False))
    return exits.OK


def _show(console: Console, label: str, res: Result | None) -> None:
    if res is None:
        console.print(f"  {label} -> [dim]not found[/dim]")
        return
    shown = ", ".join(repr(v) for v in res.values)
    kind = f"[yellow]{len(res.values)} siblings[/yellow]" if res.siblings else "value"
    console.print(f"  {label} -> {kind} [green]{_esc(shown)}[/green]  [dim]context {context_text(res.context)}[/dim]")


def _esc(text: str) -> str:
    return text.replace("[", "\\[")


def _step(console: Console, title: str, note: str) -> None:
    console.print()
    console.rule(f"[bold]{title}")
    console.print(f"[dim]{note}[/dim]")


def run(console: Console) -> None:
    with tempfile.TemporaryDirectory(prefix="ringkv-demo-") as path:
        console.print(f"[bold]ringkv {ringkv.__version__} demo[/bold] - embedded database in {_esc(path)}")

        db = ringkv.open(path)
        try:
            _step(console, "1. put and get", "db.put(key, value); db.get(key) returns the value and a causal context.")
            db.put(b"greeting", b"hello")
            _show(console, "get greeting", db.get(b"greeting"))

            _step(console, "2. siblings", "Two writers read the same version, then both write with that (now stale) context.")
            db.put(b"cart:alice", b"apples")
            first = db.get(b"cart:alice")
            _show(console, "get cart:alice", first)
            db.put(b"cart:alice", b"apples,bread", context=first.context)
            console.print("  writer A: put 'apples,bread' with that context")
            db.put(b"cart:alice", b"apples,milk", context=first.context)
            console.print("  writer B: put 'apples,milk' with the same context")
            both = db.get(b"cart:alice")
            _show(console, "get cart:alice", both)
            console.print("  Neither write saw the other, so both are kept. The reader merges them")
            console.print("  and writes the result with the context of the read that saw both:")
            merged = sorted({item for v in both.values for item in v.split(b",")})
            db.put(b"cart:alice", b",".join(merged), context=both.context)
            _show(console, "get cart:alice", db.get(b"cart:alice"))

            _step(console, "3. delete", "A delete writes a tombstone; the key reads as missing.")
            db.delete(b"greeting")
            _show(console, "get greeting", db.get(b"greeting"))

            _step(console, "4. a last-write-wins keyspace", "keyspace_create('sessions', conflict='lww'): concurrent writes keep only the latest.")
            db.keyspace_create("sessions", conflict="lww")
            sessions = db.keyspace("sessions")
            sessions.put(b"s1", b"v1")
            stale = sessions.get(b"s1").context
            sessions.put(b"s1", b"from-laptop", context=stale)
            sessions.put(b"s1", b"from-phone", context=stale)
            console.print("  two puts with the same stale context: 'from-laptop', then 'from-phone'")
            _show(console, "get s1", sessions.get(b"s1"))
        finally:
            db.close()

        _step(console, "5. persistence", "Close the database and open the directory again: everything is still there.")
        with ringkv.open(path) as db:
            table = Table(title="after reopen")
            table.add_column("keyspace")
            table.add_column("key")
            table.add_column("value")
            for info in db.keyspaces():
                for key, res in db.keyspace(info.name).items():
                    table.add_row(info.name, _esc(repr(key)), _esc(", ".join(repr(v) for v in res.values)))
            console.print(table)
            console.print(keyspace_table(db.keyspaces(), title="keyspaces"))

    console.print()
    console.print("[bold green]done[/bold green] - the temporary directory has been removed.")
    console.print("Next: [bold]ringkv --data-dir ./data put hello world[/bold], then [bold]ringkv --data-dir ./data get hello[/bold]")
