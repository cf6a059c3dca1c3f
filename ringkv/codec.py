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
from typing import Optional

import msgpack

from ringkv.errors import CorruptRecord
from ringkv.quorum.dvv import DVVSet

__all__ = ["FORMAT_V1", "FORMAT_ONE", "encode_record", "encode_one", "one_dot", "supersedes_one", "replaces_one", "decode_record", "decode_parts", "one_value", "live_value", "live_values"]

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
    """``encode_record`` of a new key's first record (one dot, one value), without building it.

    A local write's dot has its timestamp as its counter, and a timestamp
    is a u64 that needs all 8 bytes: that header is ``actor``'s template
    with the timestamp put in three times, not a msgpack call.
    """
    if counter == ts and _U32_MAX < ts <= _U64_MAX:
        pack, first, second = _ONE_TEMPLATES.get(actor) or _one_template(actor)
        return pack(first, ts, second, ts, 0xCF, ts) + value
    head = _packb([{actor: counter}, actor, counter, ts])
    return _one_prefix(FORMAT_ONE, len(head)) + head + value


def one_dot(raw: bytes, actor: str) -> Optional[tuple[int, int, int]]:
    """``(clock counter, dot counter, timestamp)`` of a stored one-value record of ``actor`` alone; None for any other.

    That is a record whose clock is ``{actor: c}`` and whose one entry is
    ``actor``'s, as ``encode_one`` writes it (counters and timestamp u64s):
    the record of a key that one coordinator wrote. The check reads fixed
    offsets of ``actor``'s template, without decoding. Only for records this
    node stored itself (as :func:`one_value`).
    """
    _, first, second = _ONE_TEMPLATES.get(actor) or _one_template(actor)
    at = len(first)
    mid = at + 8
    end = mid + len(second)
    if raw[:at] != first or raw[mid:end] != second or raw[end + 8 : end + 9] != b"\xcf":
        return None
    return _u64_at(raw, at)[0], _u64_at(raw, end)[0], _u64_at(raw, end + 9)[0]


def supersedes_one(raw: bytes, actor: str, ts: int) -> bool:
    """Whether a write by ``actor`` at ``ts`` without context over the stored ``raw`` stores ``encode_one(actor, ts, ts, value)``.

    True when ``raw`` is :func:`one_dot` of ``actor`` with its counters and
    timestamp below ``ts``: the write then replaces its one dot, under either
    conflict mode, and the merged clock is ``{actor: ts}``.
    """
    if not _U32_MAX < ts <= _U64_MAX:
        return False
    dot = one_dot(raw, actor)
    return dot is not None and dot[0] < ts and dot[1] <= dot[0] and dot[2] < ts


def replaces_one(raw: bytes, clock: dict, entries: list) -> bool:
    """Whether merging the decoded record ``(clock, entries)`` into the stored ``raw`` gives that record back.

    True when both are one-value records of one actor and the incoming one's
    dot is newer than anything ``raw`` holds (its counter above ``raw``'s
    clock, its timestamp above ``raw``'s): ``sync`` and ``sync_lww`` then keep
    the incoming entry alone under the incoming clock. A replica receiving
    the next write of a key from its coordinator stores it without decoding
    its own copy.
    """
    if len(entries) != 1 or len(clock) != 1:
        return False
    actor, counter, ts, value = entries[0]
    top = clock.get(actor)
    if top is None or type(value) is not bytes or counter > top:
        return False
    dot = one_dot(raw, actor)
    return dot is not None and dot[0] < counter and dot[1] <= dot[0] and dot[2] < ts


_u64_at = struct.Struct(">Q").unpack_from
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
#: actor -> (pack, bytes before the first timestamp, bytes between the first two): one per writing actor
_ONE_TEMPLATES: dict[str, tuple] = {}


def _one_template(actor: str) -> tuple:
    name = _packb(actor)
    head_len = 2 + 2 * len(name) + 3 * 9  # fixarray, fixmap, the actor twice, three u64s (0xcf + 8 bytes)
    first = _one_prefix(FORMAT_ONE, head_len) + b"\x94\x81" + name + b"\xcf"
    second = name + b"\xcf"
    template = (struct.Struct(f">{len(first)}sQ{len(second)}sQBQ").pack, first, second)
    if len(_ONE_TEMPLATES) >= 4096:
        _ONE_TEMPLATES.clear()
    _ONE_TEMPLATES[actor] = template
    return template


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
