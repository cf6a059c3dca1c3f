"""The on-disk (and on-wire) encoding of one key's record.

Two formats, told apart by the first byte:

* ``FORMAT_V1`` + msgpack ``[clock, entries]`` where ``clock`` is a map
  ``{actor: counter}`` and each entry is ``[actor, counter, ts, value-or-nil]``:
  any record (siblings, tombstones).
* ``FORMAT_ONE`` + u32 header length + msgpack ``[clock, actor, counter, ts]``
  + the value's bytes: a record with exactly one live value, by far the
  most common. Its value is a slice at a known offset, so scans (feeds) and
  reads get it without unpacking anything.

Anything that does not decode as a record of a known format raises
:class:`ringkv.errors.CorruptRecord` — a bad record never crashes a node.
"""

from __future__ import annotations

import struct

import msgpack

from ringkv.errors import CorruptRecord
from ringkv.quorum.dvv import DVVSet

__all__ = ["FORMAT_V1", "FORMAT_ONE", "encode_record", "encode_one", "decode_record", "decode_parts", "one_value", "live_value", "live_values"]

FORMAT_V1 = 1
FORMAT_ONE = 2
_V1 = b"\x01"
_ONE = b"\x02"
_head_len = struct.Struct(">xI").unpack_from
_one_prefix = struct.Struct(">BI").pack
_packb = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb
_VALUE_TYPES = (bytes, type(None))


def encode_record(rec: DVVSet) -> bytes:
    """The stored bytes of ``rec``: equal records encode alike, whichever order their clocks were merged in."""
    entries = rec.entries
    clock = rec.clock
    if len(clock) > 1:
        clock = dict(sorted(clock.items()))
    if len(entries) == 1 and type(entries[0][3]) is bytes:
        actor, counter, ts, value = entries[0]
        head = _packb([clock, actor, counter, ts])
        return _one_prefix(FORMAT_ONE, len(head)) + head + value
    return _V1 + _packb([clock, entries])


def encode_one(actor: str, counter: int, ts: int, value: bytes) -> bytes:
    """``encode_record`` of a new key's first record (one dot, one value), without building it."""
    head = _packb([{actor: counter}, actor, counter, ts])
    return _one_prefix(FORMAT_ONE, len(head)) + head + value


def one_value(data: bytes) -> bytes | None:
    """The value of a one-value record without decoding its header; None for any other format.

    Only for records this node stored itself: those were validated on the way
    in, and RocksDB checksums them at rest. Bytes from the network go through
    :func:`decode_parts`.
    """
    if data[:1] == _ONE and len(data) >= 6:
        end = 5 + _head_len(data)[0]
        if 5 < end <= len(data):
            return data[end:]
    return None  # not one value, or a header that cannot be one: decode_parts says which


def _check_clock(clock: dict) -> None:
    """Actor names and counters, or a merge with this record would fail far from here."""
    for actor, counter in clock.items():
        if type(actor) is not str or type(counter) is not int:
            raise ValueError("bad clock")


def decode_parts(data: bytes) -> tuple[dict, tuple]:
    """``(clock, entries)`` of a record without building a DVVSet (the read fast path)."""
    try:
        kind = data[0]
        if kind == FORMAT_ONE:
            end = 5 + _head_len(data)[0]
            if end > len(data):
                raise ValueError("header runs past the end")
            clock, actor, counter, ts = _unpackb(data[5:end], raw=False, use_list=False)
            if type(clock) is not dict or type(actor) is not str or type(counter) is not int or type(ts) is not int:
                raise ValueError("bad header")
            _check_clock(clock)
            return clock, ((actor, counter, ts, data[end:]),)
        if kind != FORMAT_V1:
            raise CorruptRecord(f"unknown record format {data[:1].hex()}")
        clock, entries = _unpackb(data[1:], raw=False, use_list=False)
        if type(clock) is not dict or type(entries) is not tuple:
            raise ValueError("bad layout")
        _check_clock(clock)
        for e in entries:
            if len(e) != 4 or type(e[3]) not in _VALUE_TYPES or type(e[2]) is not int or type(e[1]) is not int or type(e[0]) is not str:
                raise ValueError("bad entry")
    except CorruptRecord:
        raise
    except IndexError:
        raise CorruptRecord("empty record") from None
    except Exception as exc:
        raise CorruptRecord(f"undecodable record: {exc}") from None
    return clock, entries


def decode_record(data: bytes) -> DVVSet:
    clock, entries = decode_parts(data)
    return DVVSet(clock, list(entries))


def live_value(entries) -> bytes | None:
    """The value of a write-once record: None if any entry is a tombstone (a remove wins)."""
    data = None
    for e in entries:
        if e[3] is None:
            return None
        if data is None:
            data = e[3]
    return data


_NONE = type(None)


def live_values(raws: list[bytes]) -> list[bytes | None]:
    """:func:`live_value` of many records (the feed scan fast path).

    A single-value record's value is a slice behind its header; only other
    records (tombstones, siblings) are unpacked.
    """
    try:
        out: list = [r[5 + _head_len(r)[0]:] if r[0] == FORMAT_ONE else None for r in raws]
    except (struct.error, IndexError):
        out = [None] * len(raws)
    if None in out or b"" in out:  # an empty slice may be a header running past the end: check those
        for i, r in enumerate(raws):
            if not out[i]:
                out[i] = live_value(decode_parts(r)[1])
    return out
