"""``ringkv feed ...`` and ``ringkv feeds``: ordered event streams of one keyspace.

Entry ids are printed as ``ringkv feed append`` prints them (26 characters,
lowercase base32hex). They sort like the entries and act as cursors:
``--after ID`` starts right after that entry. An id that is not one (wrong
length or alphabet) is an error (exit 3); a well-formed id of an entry that
does not exist makes ``feed get`` exit 1, like ``get`` of a missing key.

JSON (``--json``): an entry is ``{"id", "data", "encoding"}`` where
``encoding`` is ``"utf-8"`` or ``"base64"`` as for ``get --json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

from rich.table import Table
from rich.text import Text

from ringkv.cli import exits
from ringkv.cli.output import encode_values, preview, print_json, shown_value, stdout_console, write_line, write_value
from ringkv.cli.target import add_target_options, open_target
from ringkv.feeds.api import Entry
from ringkv.feeds.ids import parse_id
from ringkv.keyspaces import DEFAULT_KEYSPACE

__all__ = ["register", "entry_json"]


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    epilog = "Entry ids are cursors: --after ID starts right after that entry."

    def ks_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("-k", "--keyspace", metavar="KS", default=DEFAULT_KEYSPACE, help="keyspace of the feed (default: %(default)s)")

    def feed_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", metavar="NAME", help="the feed (text, 1-1024 bytes); created by its first append")
        ks_opt(p)

    def r_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--r", type=int, metavar="R", help="read quorum for this call (default: the keyspace's)")

    def w_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--w", type=int, metavar="W", help="write quorum for this call (default: the keyspace's)")

    feed = sub.add_parser("feed", help="append to, read and trim feeds (event streams)", description="Feeds: ordered, append-mostly event streams.", epilog=epilog)
    fs = feed.add_subparsers(dest="feed_command", metavar="ACTION", required=True)

    p = fs.add_parser("append", parents=parents, help="append an entry; prints its id", description="Append DATA to feed NAME and print the new entry's id.")
    feed_args(p)
    p.add_argument("data", metavar="DATA", nargs="?", help="the entry's data (text); or use --file")
    p.add_argument("--file", metavar="PATH", help="read the entry's bytes from PATH ('-' for stdin)")
    w_opt(p)
    p.set_defaults(func=cmd_append)

    p = fs.add_parser("list", parents=parents, help="list entries, oldest first", description="List the entries of feed NAME, oldest first (newest first with --reverse).", epilog=epilog)
    feed_args(p)
    p.add_argument("--reverse", action="store_true", help="newest first")
    p.add_argument("--limit", type=_count, metavar="N", help="at most N entries")
    p.add_argument("--after", metavar="ID", help="start after entry ID (exclusive; with --reverse: older than ID)")
    r_opt(p)
    p.set_defaults(func=cmd_list)

    p = fs.add_parser("get", parents=parents, help="one entry with its neighbours' ids", description="Show entry ID of feed NAME with the ids of the entries before and after it. Exit status 1 if it does not exist.")
    feed_args(p)
    p.add_argument("entry_id", metavar="ID")
    p.add_argument("--raw", action="store_true", help="write only the entry's exact bytes")
    r_opt(p)
    p.set_defaults(func=cmd_get)

    p = fs.add_parser("remove", parents=parents, help="remove one entry", description="Remove entry ID from feed NAME (removing a missing entry is not an error).")
    feed_args(p)
    p.add_argument("entry_id", metavar="ID")
    w_opt(p)
    p.set_defaults(func=cmd_remove)

    p = fs.add_parser("trim", parents=parents, help="remove old entries", description="Remove the oldest entries of feed NAME: all but the newest N, or all before entry ID.")
    feed_args(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--keep-last", type=_count, metavar="N", help="keep only the newest N entries")
    how.add_argument("--before", metavar="ID", help="remove every entry older than entry ID")
    p.set_defaults(func=cmd_trim)

    p = fs.add_parser("length", parents=parents, help="number of entries", description="Print the number of entries of feed NAME.")
    feed_args(p)
    r_opt(p)
    p.set_defaults(func=cmd_length)

    # follow gives --timeout its own meaning (how long to follow), so its
    # target options come without the per-call --timeout.
    target = argparse.ArgumentParser(add_help=False)
    add_target_options(target, timeout=False)
    p = fs.add_parser(
        "follow",
        parents=[target],
        help="print new entries as they arrive (tail -f)",
        description=(
            "Print the entries appended to feed NAME from now on (or after --after ID), one per line as `ID DATA`, "
            "until Ctrl-C or --timeout; exit status 0 either way. On an embedded database only this process can "
            "append, so follow is for clusters (--connect)."
        ),
    )
    feed_args(p)
    p.add_argument("--after", metavar="ID", help="start after entry ID instead of at the current end")
    p.add_argument("--timeout", dest="follow_for", type=_duration, metavar="SECONDS", help="stop after SECONDS (default: follow until Ctrl-C); a --timeout before `feed` is the deadline of each cluster call")
    p.add_argument("--poll", type=_duration, metavar="SECONDS", default=0.2, help="how often to look for new entries (default: %(default)g)")
    p.add_argument("--json", action="store_true", help="one JSON object per entry and line")
    p.set_defaults(func=cmd_follow)

    p = fs.add_parser("names", parents=parents, help="list the feeds of a keyspace", description="List the feeds of a keyspace.")
    ks_opt(p)
    p.set_defaults(func=cmd_names)

    p = sub.add_parser("feeds", parents=parents, help="list the feeds of a keyspace (= feed names)", description="List the feeds of a keyspace.")
    ks_opt(p)
    p.set_defaults(func=cmd_names)


# -- argument types ------------------------------------------------------------


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"not a count >= 0: {text!r}")
    return n


def _duration(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        s = -1.0
    if not 0 < s <= 10**6:
        raise argparse.ArgumentTypeError(f"not a number of seconds > 0: {text!r}")
    return s


def _check_id(entry_id: Optional[str]) -> None:
    """A malformed entry id is an error (exit 3) before anything is opened."""
    if entry_id is not None:
        parse_id(entry_id)  # BadRequest (exit 3) with the reason


# -- helpers -------------------------------------------------------------------


def _feed(db, args: argparse.Namespace):
    return db.keyspace(args.keyspace).feed(os.fsencode(args.name))


def _data(args: argparse.Namespace) -> bytes:
    if (args.data is None) == (args.file is None):
        raise exits.UsageError("give the data either as DATA or with --file, exactly one")
    if args.file is None:
        return os.fsencode(args.data)
    if args.file == "-":
        return sys.stdin.buffer.read()
    with open(args.file, "rb") as f:
        return f.read()


def entry_json(entry: Entry, *, links: bool = False) -> dict:
    """An entry as JSON: ``{"id", "data", "encoding"}`` (+ ``prev_id``/``next_id``)."""
    (data,), encoding = encode_values([entry.data])
    out = {"id": entry.id, "data": data, "encoding": encoding}
    if links:
        out["prev_id"] = entry.prev_id
        out["next_id"] = entry.next_id
    return out


def _entries_table(entries: list[Entry], title: str) -> Table:
    table = Table(title=title)
    table.add_column("#", justify="right", style="dim")
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("data")
    for i, e in enumerate(entries, 1):
        table.add_row(str(i), e.id, Text(preview(e.data)))
    return table


# -- commands ------------------------------------------------------------------


def cmd_append(args: argparse.Namespace) -> int:
    data = _data(args)
    with open_target(args) as db:
        entry_id = _feed(db, args).append(data, w=args.w)
    if args.json:
        print_json({"feed": args.name, "keyspace": args.keyspace, "id": entry_id})
    else:
        write_line(entry_id)
    return exits.OK


def cmd_list(args: argparse.Namespace) -> int:
    _check_id(args.after)
    with open_target(args, create=False) as db:
        entries = list(_feed(db, args).iterate(args.after, args.reverse, args.limit, r=args.r))
    if args.json:
        print_json([entry_json(e) for e in entries])
        return exits.OK
    order = "newest first" if args.reverse else "oldest first"
    stdout_console().print(_entries_table(entries, f"feed {args.name} ({len(entries)} entries, {order})"))
    return exits.OK


def cmd_get(args: argparse.Namespace) -> int:
    _check_id(args.entry_id)
    with open_target(args, create=False) as db:
        entry = _feed(db, args).get(args.entry_id, r=args.r)
    if entry is None:
        sys.stderr.write(f"error: entry {args.entry_id} not found in feed {args.name!r} of keyspace {args.keyspace!r}\n")
        return exits.NOT_FOUND
    if args.raw:
        write_value(entry.data, newline=False)
    elif args.json:
        print_json({"feed": args.name, "keyspace": args.keyspace, **entry_json(entry, links=True)})
    else:
        write_line(f"id:   {entry.id}")
        write_value(b"data: " + shown_value(entry.data))
        write_line(f"prev: {entry.prev_id or '(none: the first entry)'}")
        write_line(f"next: {entry.next_id or '(none: the last entry)'}")
    return exits.OK


def cmd_remove(args: argparse.Namespace) -> int:
    _check_id(args.entry_id)
    with open_target(args) as db:
        _feed(db, args).remove(args.entry_id, w=args.w)
    if args.json:
        print_json({"feed": args.name, "keyspace": args.keyspace, "id": args.entry_id, "ok": True})
    return exits.OK


def cmd_trim(args: argparse.Namespace) -> int:
    _check_id(args.before)
    with open_target(args) as db:
        removed = _feed(db, args).trim(keep_last=args.keep_last, before=args.before)
    if args.json:
        print_json({"feed": args.name, "keyspace": args.keyspace, "removed": removed})
    else:
        stdout_console().print(f"removed {removed} entries from feed {args.name}", markup=False)
    return exits.OK


def cmd_length(args: argparse.Namespace) -> int:
    with open_target(args, create=False) as db:
        n = _feed(db, args).length(r=args.r)
    if args.json:
        print_json({"feed": args.name, "keyspace": args.keyspace, "length": n})
    else:
        write_line(str(n))
    return exits.OK


def cmd_names(args: argparse.Namespace) -> int:
    with open_target(args, create=False) as db:
        names = db.keyspace(args.keyspace).feeds()
    if args.json:
        print_json({"keyspace": args.keyspace, "feeds": names})
    else:
        for name in names:
            write_line(name)
    return exits.OK


def cmd_follow(args: argparse.Namespace) -> int:
    _check_id(args.after)
    deadline = None if args.follow_for is None else time.monotonic() + args.follow_for
    with open_target(args, create=False) as db:
        feed = _feed(db, args)
        try:
            cursor = args.after
            if cursor is None:
                last = feed.last()
                cursor = last.id if last is not None else None
            while deadline is None or time.monotonic() < deadline:
                got = False
                for entry in feed.iterate(cursor):
                    got = True
                    cursor = entry.id
                    _print_followed(entry, args.json)
                if not got:
                    left = args.poll if deadline is None else min(args.poll, deadline - time.monotonic())
                    if left > 0:
                        time.sleep(left)  # the polling interval of a tail -f
        except KeyboardInterrupt:
            pass  # Ctrl-C ends a follow normally
    return exits.OK


def _print_followed(entry: Entry, as_json: bool) -> None:
    if as_json:
        print_json(entry_json(entry))
    else:
        write_value(entry.id.encode() + b" " + shown_value(entry.data))
