"""Durable hints: which records a fallback holds for a down owner.

A fallback stores the record itself in the keyspace's column family (so it
is as durable as any write) and, in the same WriteBatch, an index entry in
``_hints``: ``target \\0 keyspace \\0 key``. Delivery reads the current
record, sends it to the owner, and deletes the index entry only after the
owner acknowledged it.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from ringkv.storage import HINTS_CF, Storage

__all__ = ["HintStore", "hint_key"]

_SEP = b"\x00"


def hint_key(target: str, keyspace: str, key: bytes) -> bytes:
    return target.encode() + _SEP + keyspace.encode() + _SEP + key


def _bounds(target: str) -> tuple[bytes, bytes]:
    """The index range of ``target``'s hints."""
    return target.encode() + _SEP, target.encode() + b"\x01"


def _split(hkey: bytes) -> tuple[str, str, bytes]:
    target, keyspace, key = hkey.split(_SEP, 2)
    return target.decode(), keyspace.decode(), key


class HintStore:
    """The ``_hints`` index plus per-target counts (rebuilt by one scan at start)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._counts: Counter[str] = Counter()
        for hkey, _ in storage.scan(HINTS_CF):
            self._counts[_split(hkey)[0]] += 1

    def add(self, batch, target: str, keyspace: str, key: bytes, stamp: int) -> None:
        """Add (or refresh) the index entry in the caller's batch, beside the record.

        ``stamp`` (the write's HLC time) changes on every hinted write, so a
        delivery that raced with a newer write does not delete its hint.
        """
        hkey = hint_key(target, keyspace, key)
        marks = batch.marks
        if marks is None:
            marks = batch.marks = set()
        if hkey not in marks:  # the same key twice in one batch is one hint
            marks.add(hkey)
            if self.storage.get(HINTS_CF, hkey) is None:
                self._counts[target] += 1
        batch.put(HINTS_CF, hkey, stamp.to_bytes(8, "big"))

    def pending(self) -> dict[str, int]:
        return {t: c for t, c in self._counts.items() if c > 0}

    def total(self) -> int:
        return sum(self._counts.values())

    def for_target(self, target: str, limit: int) -> Iterator[tuple[bytes, bytes, str, bytes]]:
        """Up to ``limit`` hints for ``target``: ``(hint key, stamp, keyspace, key)``."""
        n = 0
        for hkey, stamp in self.storage.scan(HINTS_CF, *_bounds(target), chunk=limit):
            _, keyspace, key = _split(hkey)
            yield hkey, stamp, keyspace, key
            n += 1
            if n >= limit:
                return

    def recount(self, target: str) -> int:
        """Set ``target``'s count from the index, which is the truth, and return it.

        The count can drift above it: a hint counted in a batch that then
        failed to be written. A count that never returns to zero would keep
        the node from settling.
        """
        n = sum(1 for _ in self.storage.scan(HINTS_CF, *_bounds(target)))
        if n:
            self._counts[target] = n
        else:
            self._counts.pop(target, None)
        return n

    def delivered(self, hkey: bytes, stamp: bytes) -> None:
        """The owner acknowledged the copy sent for ``stamp``; drop the hint unless rewritten since."""
        if self.storage.get(HINTS_CF, hkey) != stamp:
            return
        self.storage.delete(HINTS_CF, hkey)
        target = hkey.split(_SEP, 1)[0].decode()
        self._counts[target] = max(0, self._counts[target] - 1)

    def drop_target(self, target: str) -> None:
        """Forget every hint for ``target`` undelivered (tools and tests; departed members' hints are rehomed instead)."""
        b = self.storage.batch()
        b.delete_range(HINTS_CF, *_bounds(target))
        self.storage.write(b)
        self._counts.pop(target, None)
