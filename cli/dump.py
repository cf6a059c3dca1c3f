"""``ringkv dump`` / ``ringkv load``: a keyspace as JSON lines, of an embedded database or a cluster.

One line per live key, in the store's (hash) order (a cluster's keys are
read page by page, each page merged from R replicas)::

    {"key": "alice", "values": ["hello"], "encoding": "utf-8", "context": "kq5h..."}

``values`` holds every sibling; ``encoding`` is ``"utf-8"`` when every value
is text, else ``"base64"`` for all of them (as ``get --json``). A key that
is not UTF-8 is written as base64 with ``"key_encoding": "base64"``.
``context`` is the causal context the key had in the dumped database, for
reference; ``load`` does not use it (a context only means something to the
database that made it).

``load`` writes each line's values with the context the key has in the
target (none for a new key), so they replace what is there and several
values come back as siblings, in the order of the line.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
from typing import IO, Iterator, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ringkv.cli import exits
from ringkv.cli.output import context_text, encode_values, print_json, stderr_console, stdout_console
from ringkv.cli.target import add_target_options, open_target
from ringkv.keyspaces import DEFAULT_KEYSPACE
from ringkv.quorum.dvv import encode_context

__all__ = ["register", "dump_record", "parse_record"]

#: The context of a read that saw nothing: values written with it are all kept.
EMPTY_CONTEXT = encode_context({})
#: Keys between two progress updates.
STEP = 500


def register(sub: argparse._SubParsersAction) -> None:
    target = argparse.ArgumentParser(add_help=False)
    add_target_options(target)

    p = sub.add_parser(
        "dump",
        parents=[target],
        help="write a keyspace as JSON lines",
        description="Write every live key of a keyspace of the embedded database (--data-dir) as one JSON line: key, values, encoding, context.",
    )
    p.add_argument("-k", "--keyspace", metavar="KS", default=DEFAULT_KEYSPACE, help="keyspace (default: %(default)s)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout (replaced only once the dump is complete)")
    p.set_defaults(func=cmd_dump)

    p = sub.add_parser(
        "load",
        parents=[target],
        help="put back the keys of a dump",
        description=(
            "Put every key of FILE (JSON lines written by `ringkv dump`; '-' for stdin) into a keyspace of the embedded "
            "database (--data-dir). Each key's values replace what the key holds; several values become siblings, in order."
        ),
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("-k", "--keyspace", metavar="KS", default=DEFAULT_KEYSPACE, help="keyspace (default: %(default)s; it must exist)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_load)


# -- the line format -------------------------------------------------------------


def dump_record(key: bytes, values: list[bytes], context: bytes) -> dict:
    """One key as the JSON object of a dump line."""
    shown, encoding = encode_values(values)
    out: dict = {}
    try:
        out["key"] = key.decode("utf-8")
    except UnicodeDecodeError:
        out["key"] = base64.b64encode(key).decode("ascii")
        out["key_encoding"] = "base64"
    out.update(values=shown, encoding=encoding, context=context_text(context))
    return out


def _decode(text: object, encoding: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string")
    if encoding == "utf-8":
        return text.encode("utf-8", "surrogateescape")
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{what} is not valid base64") from None
    raise ValueError(f"unknown encoding {encoding!r} (utf-8 or base64)")


def parse_record(line: str) -> tuple[bytes, list[bytes]]:
    """``(key, values)`` of a dump line; ValueError says what is wrong."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if "key" not in obj or "values" not in obj:
        raise ValueError('needs "key" and "values"')
    key = _decode(obj["key"], obj.get("key_encoding", "utf-8"), "key")
    values = obj["values"]
    if not isinstance(values, list) or not values:
        raise ValueError('"values" must be a non-empty list')
    encoding = obj.get("encoding", "utf-8")
    return key, [_decode(v, encoding, "a value") for v in values]


# -- commands --------------------------------------------------------------------


def _progress(console: Console, total: Optional[int]) -> Progress:
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def cmd_dump(args: argparse.Namespace) -> int:
    with open_target(args, create=False) as db:
        ks = db.keyspace(args.keyspace)
        estimate = _estimate(db, ks)
        if args.output:
            tmp = f"{args.output}.tmp-{os.getpid()}"
            try:
                with open(tmp, "wb") as out:
                    n = _write_dump(ks, out, estimate)
                os.replace(tmp, args.output)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            n = _write_dump(ks, sys.stdout.buffer, estimate)
    where = args.output or "stdout"
    console = stdout_console() if args.output else stderr_console()
    console.print(f"dumped {n} keys of keyspace {args.keyspace} to {where}", markup=False)
    return exits.OK


def _estimate(db, ks) -> Optional[int]:
    """RocksDB's estimate of the keyspace's keys, for the progress bar (None if unknown)."""
    storage, cf = getattr(db, "_storage", None), getattr(ks, "_cf", None)
    try:
        return int(storage.approximate_keys(cf)) or None  # type: ignore[union-attr]
    except Exception:
        return None


def _write_dump(ks, out: IO[bytes], estimate: Optional[int]) -> int:
    n = 0
    sys.stdout.flush()
    with _progress(stderr_console(), estimate) as progress:
        task = progress.add_task(f"dumping keyspace {ks.name}", total=estimate)
        for key, res in ks.items():
            line = json.dumps(dump_record(key, res.values, res.context), ensure_ascii=False) + "\n"
            out.write(line.encode("utf-8", "backslashreplace"))
            n += 1
            if n % STEP == 0:
                if estimate is not None and n > estimate:
                    progress.update(task, total=None)
                    estimate = None
                progress.update(task, completed=n)
        progress.update(task, completed=n, total=n)
    out.flush()
    return n


def _lines(path: str) -> Iterator[tuple[int, str]]:
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        for i, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise exits.CommandError(f"{path}: line {i}: not UTF-8") from None
            if text.strip():
                yield i, text
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _count_lines(path: str) -> Optional[int]:
    if path == "-":
        return None
    with open(path, "rb") as f:
        return sum(1 for raw in f if raw.strip())


def cmd_load(args: argparse.Namespace) -> int:
    total = _count_lines(args.file)  # also: a missing file fails before the database is opened
    keys = values = 0
    with open_target(args) as db:
        ks = db.keyspace(args.keyspace)
        with _progress(stderr_console(), total) as progress:
            task = progress.add_task(f"loading into keyspace {args.keyspace}", total=total)
            for i, line in _lines(args.file):
                try:
                    key, vals = parse_record(line)
                except ValueError as exc:
                    raise exits.CommandError(f"{args.file}: line {i}: {exc} ({keys} keys loaded before it)") from None
                current = ks.get(key)
                context = current.context if current is not None else EMPTY_CONTEXT
                for v in vals:
                    ks.put(key, v, context)
                keys += 1
                values += len(vals)
                if keys % STEP == 0:
                    progress.update(task, completed=keys)
            progress.update(task, completed=keys)
    if args.json:
        print_json({"keyspace": args.keyspace, "keys": keys, "values": values})
    else:
        stdout_console().print(f"loaded {keys} keys ({values} values) into keyspace {args.keyspace}", markup=False)
    return exits.OK
