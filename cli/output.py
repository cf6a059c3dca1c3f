"""How the CLI prints: values, causal contexts, JSON documents and tables.

Text rules, shared by every command:

* A causal context is printed as unpadded URL-safe base64 (RFC 4648 §5);
  ``--context`` accepts that text, with or without ``=`` padding.
* In JSON, values are strings. ``"encoding": "utf-8"`` means they are the
  values' text; ``"base64"`` (used when any value is not valid UTF-8) means
  every value is standard base64 of its bytes.
* JSON is written as UTF-8 and always parses, whatever the input bytes.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from ringkv.keyspaces import KeyspaceInfo

__all__ = [
    "context_text",
    "context_arg",
    "encode_values",
    "print_json",
    "write_value",
    "keyspace_table",
    "stdout_console",
    "stderr_console",
    "shown_value",
    "preview",
    "human_bytes",
    "human_seconds",
]


def context_text(context: bytes) -> str:
    """The printable form of a causal context."""
    return base64.urlsafe_b64encode(context).rstrip(b"=").decode("ascii")


def context_arg(text: str) -> bytes:
    """argparse ``type=`` for ``--context``: the text printed by ``ringkv get``."""
    raw = text.strip().encode("ascii", "replace")
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise argparse.ArgumentTypeError("not a context printed by `ringkv get` (URL-safe base64)") from None


def encode_values(values: Iterable[bytes]) -> tuple[list[str], str]:
    """``(strings, encoding)``: UTF-8 text if every value decodes, else base64 for all."""
    values = list(values)
    try:
        return [v.decode("utf-8") for v in values], "utf-8"
    except UnicodeDecodeError:
        return [base64.b64encode(v).decode("ascii") for v in values], "base64"


def print_json(obj: Any) -> None:
    """One JSON document on stdout.

    Text that cannot be UTF-8 (a command-line argument with undecodable
    bytes) comes out as a ``\\udcXX`` escape, which is still valid JSON.
    """
    text = json.dumps(obj, ensure_ascii=False) + "\n"
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8", "backslashreplace"))
    sys.stdout.buffer.flush()


def write_value(data: bytes, *, newline: bool = True) -> None:
    """A value's bytes on stdout, exactly (binary safe)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data + (b"\n" if newline else b""))
    sys.stdout.buffer.flush()


def write_line(text: str) -> None:
    write_value(text.encode("utf-8", "backslashreplace"))


#: Columns for tables when stdout is not a terminal (rich would cut them to 80).
PIPE_WIDTH = 120


def stdout_console() -> Console:
    """A rich console for tables and messages (plain text when not a terminal)."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, PIPE_WIDTH)
    return console


def stderr_console() -> Console:
    """A rich console on stderr, for progress displays that must not mix with data on stdout."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def shown_value(value: bytes) -> bytes:
    """A value for a human: its text, or a base64 rendering if it is not UTF-8."""
    try:
        value.decode("utf-8")
        return value
    except UnicodeDecodeError:
        (b64,), _ = encode_values([value])
        return f"(binary, {len(value)} bytes, base64) {b64}".encode()


def preview(value: bytes, width: int = 60) -> str:
    """A one-line preview of a value for a table cell: its text, cut to ``width``."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(value)} bytes)"
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def human_bytes(n: float | int | None) -> str:
    """``1.5 MB`` style (powers of 1024)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns


def human_seconds(s: float | int | None) -> str:
    """``4s``, ``2m05s``, ``1h02m``; ``-`` when unknown."""
    if s is None or s != s or s < 0:
        return "-"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def keyspace_table(infos: Iterable[KeyspaceInfo], title: str | None = None) -> Table:
    table = Table(title=title)
    table.add_column("keyspace", style="bold")
    for col in ("N", "R", "W"):
        table.add_column(col, justify="right")
    table.add_column("conflict")
    for info in infos:
        table.add_row(info.name, str(info.n), str(info.r), str(info.w), info.conflict)
    return table
