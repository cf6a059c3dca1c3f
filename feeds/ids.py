"""Feed entry ids: unique and totally ordered across writers, printable, sortable.

16 bytes: the writer's HLC timestamp (8), the writer's node id (6), a
sequence number (2) that only disambiguates a writer's own ids. HLC order
follows causality and wall time, the node id breaks ties between writers, so
every replica orders a feed the same way without coordination. The printable
form is lowercase base32hex (RFC 4648), which sorts like the bytes.
"""

from __future__ import annotations

import itertools
import threading

from ringkv.errors import BadRequest, WrongType
from ringkv.quorum.hlc import HLC

__all__ = ["EntryIds", "format_id", "parse_id", "ID_LEN"]

ID_LEN = 16


_DIGITS = "0123456789abcdefghijklmnopqrstuv"
#: Every 10-bit value as its two base32hex digits: an id is 13 table lookups.
_PAIRS = [_DIGITS[i >> 5] + _DIGITS[i & 31] for i in range(1024)]
_SHIFTS = range(120, -1, -10)


def format_id(raw: bytes) -> str:
    """The 26-character lowercase base32hex form of a 16-byte id (sorts like the bytes)."""
    n = int.from_bytes(raw, "big") << 2  # 128 bits padded to 130 = 26 digits of 5 bits
    return "".join([_PAIRS[(n >> s) & 1023] for s in _SHIFTS])


def parse_id(entry_id: object) -> bytes:
    """An entry id from its printable form (or raw 16 bytes); BadRequest otherwise."""
    if isinstance(entry_id, bytes) and len(entry_id) == ID_LEN:
        return entry_id
    if not isinstance(entry_id, str):
        raise WrongType(f"entry id must be a str, not {type(entry_id).__name__}")
    text = entry_id.strip()
    if len(text) != 26 or not text.isascii() or not text.isalnum():
        raise BadRequest(f"bad entry id {entry_id!r:.40}: expected 26 base32hex characters")
    try:
        n = int(text, 32)  # Python's base 32 digits are exactly base32hex's 0-9a-v
    except ValueError:
        raise BadRequest(f"bad entry id {entry_id!r:.40}") from None
    if n & 3:
        raise BadRequest(f"bad entry id {entry_id!r:.40}")
    return (n >> 2).to_bytes(ID_LEN, "big")


class EntryIds:
    """Makes a writer's entry ids from its HLC."""

    def __init__(self, node_id: str, hlc: HLC) -> None:
        try:
            writer = bytes.fromhex(node_id)[:6]
        except ValueError:
            writer = node_id.encode()[:6]
        self._writer = writer.ljust(6, b"\0")
        self._hlc = hlc
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def observe(self, entry_id: bytes) -> None:
        """Make the next id sort after ``entry_id`` (within the clock's drift bound)."""
        self._hlc.observe(int.from_bytes(entry_id[:8], "big"))

    def next(self) -> bytes:
        with self._lock:
            ts = self._hlc.now()
            seq = next(self._seq) & 0xFFFF
        return ts.to_bytes(8, "big") + self._writer + seq.to_bytes(2, "big")
