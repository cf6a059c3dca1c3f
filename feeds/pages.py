"""Feed pages as a few byte strings: building, digesting and reading them back.

A page of 2048 entries as lists costs 4096 small objects to slice, pack,
unpack and check. Entries written by the same kind of writer share one
record layout (:data:`ringkv.codec.FORMAT_ONE` with the same header
length), so such a page travels as the replica's keys and records joined,
plus the records' lengths; the reader slices ids and values out. A page
whose records differ (removed entries, siblings) uses the list form.

The digest two replicas compare is taken over the same joined bytes, so a
replica that only digests pays for two joins and one hash.
"""

from __future__ import annotations

import sys
from array import array
from functools import lru_cache
from itertools import accumulate, repeat
from operator import itemgetter
from struct import Struct
from typing import Optional

from xxhash import xxh3_64

from ringkv.codec import FORMAT_ONE
from ringkv.errors import ProtocolError
from ringkv.quorum.tables import ENTRY_ID_LEN

__all__ = ["Joined", "page_digest", "packed_fields", "unpack", "check_packed", "first_of_packed"]

_key = itemgetter(0)
_record = itemgetter(1)
_HEADER = 5  # format byte + u32 header length (see ringkv.codec)
_BIG = sys.byteorder == "big"
#: Longest storage key a packed page carries (entry id and the feed's prefix):
#: pages of feeds with very long names travel as lists of 16-byte ids instead.
MAX_STRIDE = 128
#: Most entries a page is sliced with one cached Struct (each costs 32 bytes per entry).
_MAX_FIELDS = 4096
assert array("I").itemsize == 4, "u32 arrays"


class Joined:
    """One replica's ``(storage key, record)`` rows as joined bytes, and their digest."""

    __slots__ = ("keys", "records", "key_lengths", "lengths", "digest", "_records")

    def __init__(self, rows: list[tuple[bytes, bytes]]) -> None:
        keys = list(map(_key, rows))
        records = list(map(_record, rows))
        self.keys = b"".join(keys)
        self.records = b"".join(records)
        self.key_lengths = _u32s(map(len, keys))
        self.lengths = _u32s(map(len, records))
        h = xxh3_64()
        h.update(self.lengths)
        h.update(self.key_lengths)
        h.update(self.keys)
        h.update(self.records)
        self.digest = h.intdigest()
        self._records = records

    def stride(self) -> Optional[int]:
        """The one length of every key, if they have one."""
        count = len(self._records)
        if not count or not _same(self.key_lengths, count):
            return None
        return len(self.keys) // count

    def uniform_skip(self) -> Optional[int]:
        """Where every record's value starts, if all records are single values with one header length."""
        records = self._records
        count = len(records)
        stride = self.stride()
        if stride is None or stride > MAX_STRIDE:
            return None
        first = records[0][:_HEADER]
        if len(first) < _HEADER or first[0] != FORMAT_ONE:
            return None
        if _same(self.lengths, count):
            # one record length: the headers sit at fixed offsets, compared a byte column at a time
            size = len(self.records) // count
            joined = self.records
            if any(joined[i::size] != first[i:i + 1] * count for i in range(_HEADER)):
                return None
        else:
            if not all(map(bytes.startswith, records, repeat(first))):
                return None
            size = min(_lengths(self.lengths))
        skip = _HEADER + int.from_bytes(first[1:], "big")
        return skip if size >= skip else None


def page_digest(rows: list[tuple[bytes, bytes]]) -> int:
    """A page's digest: equal digests mean the same keys holding the same record bytes."""
    return Joined(rows).digest


def packed_fields(joined: Joined, skip: int, cursor: Optional[bytes], more: bool) -> tuple:
    """The fields of a ``feed.packed_page`` for rows whose records all have their value at ``skip``."""
    return joined.keys, joined.stride(), joined.records, joined.lengths, skip, cursor, more


def unpack(keys: bytes, stride: int, records: bytes, lengths: bytes, skip: int) -> tuple[list[bytes], list[bytes]]:
    """``(ids, values)`` of a checked packed page."""
    count = len(lengths) // 4
    cached = 0 < count <= _MAX_FIELDS
    if cached:
        ids = list(_fields(stride - ENTRY_ID_LEN, ENTRY_ID_LEN, count).unpack(keys))
    else:
        ids = [keys[i:i + ENTRY_ID_LEN] for i in range(stride - ENTRY_ID_LEN, len(keys), stride)]
    if cached and _same(lengths, count):
        values = list(_fields(skip, len(records) // count - skip, count).unpack(records))
    else:
        ends = list(accumulate(_lengths(lengths)))
        values = [records[s + skip:e] for s, e in zip([0, *ends[:-1]], ends)]
    return ids, values


def first_of_packed(keys: bytes, stride: int, records: bytes, lengths: bytes, skip: int, limit: int) -> tuple:
    """The fields of a packed page cut to its first ``limit`` entries, its cursor being the last one kept."""
    size = sum(_lengths(lengths[: 4 * limit]))
    keys = keys[: stride * limit]
    return keys, stride, records[:size], lengths[: 4 * limit], skip, keys[-ENTRY_ID_LEN:], True


def check_packed(page) -> None:
    """ProtocolError unless the packed page's parts agree with each other."""
    stride, skip = page.stride, page.skip
    if stride < ENTRY_ID_LEN or skip < _HEADER or len(page.lengths) % 4:
        raise ProtocolError("feed.packed_page: bad layout")
    count = len(page.lengths) // 4
    if count and _same(page.lengths, count):
        (size,) = _lengths(page.lengths[:4])
        total, low = size * count, size
    else:
        lengths = _lengths(page.lengths)
        total, low = sum(lengths), min(lengths, default=skip)
    if len(page.keys) != stride * count or total != len(page.records) or low < skip:
        raise ProtocolError("feed.packed_page: parts do not agree")


@lru_cache(maxsize=16)
def _fields(skip: int, width: int, count: int) -> Struct:
    """Reads ``count`` fields of ``width`` bytes, each after ``skip`` bytes: one C call slices a page."""
    return Struct(f"{skip}x{width}s" * count)


def _same(u32s: bytes, count: int) -> bool:
    """Whether ``count`` packed u32s are all the same."""
    return u32s == u32s[:4] * count


def _u32s(values) -> bytes:
    """Little-endian u32s (lengths on the wire and in digests)."""
    a = array("I", list(values))
    if _BIG:
        a.byteswap()
    return a.tobytes()


def _lengths(data: bytes) -> array:
    a = array("I")
    a.frombytes(data)
    if _BIG:
        a.byteswap()
    return a
