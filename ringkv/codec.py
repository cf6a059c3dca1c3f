"""The on-disk (and on-wire) encoding of one key's record.

``FORMAT_V1`` byte + msgpack ``[clock, entries]`` where ``clock`` is a map
``{actor: counter}`` and each entry is ``[actor, counter, ts, value-or-nil]``. The version byte lets later formats coexist with old data;
anything that does not decode as a record of a known format raises
:class:`ringkv.errors.CorruptRecord` — a bad record never crashes a node.
"""

from __future__ import annotations

import msgpack

from ringkv.errors import CorruptRecord
from ringkv.quorum.dvv import DVVSet

__all__ = ["FORMAT_V1", "encode_record", "decode_record", "decode_parts"]

FORMAT_V1 = 1
_V1 = b"\x01"
_packb = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb
_VALUE_TYPES = (bytes, type(None))


def encode_record(rec: DVVSet) -> bytes:
    return _V1 + _packb([rec.clock, rec.entries])


def decode_parts(data: bytes) -> tuple[dict, tuple]:
    """``(clock, entries)`` of a record without building a DVVSet (the read fast path)."""
    if not data or data[0] != FORMAT_V1:
        raise CorruptRecord(f"unknown record format {data[:1].hex() or 'empty'}")
    try:
        clock, entries = _unpackb(data[1:], raw=False, use_list=False)
        if type(clock) is not dict or type(entries) is not tuple:
            raise ValueError("bad layout")
        for e in entries:
            if len(e) != 4 or type(e[3]) not in _VALUE_TYPES or type(e[2]) is not int or type(e[1]) is not int:
                raise ValueError("bad entry")
    except Exception as exc:
        raise CorruptRecord(f"undecodable record: {exc}") from None
    return clock, entries


def decode_record(data: bytes) -> DVVSet:
    clock, entries = decode_parts(data)
    return DVVSet(clock, list(entries))
