"""What a read returns: the value (or siblings) and the causal context."""

from __future__ import annotations

from typing import Mapping

from ringkv.codec import decode_parts
from ringkv.errors import ConflictError
from ringkv.quorum.dvv import encode_context

__all__ = ["Result"]


class Result:
    """A read of one key.

    ``values`` holds every live sibling (one unless writes were concurrent);
    ``value`` insists on one and raises :class:`ConflictError` otherwise;
    ``context`` is the opaque causal context to pass to the next ``put`` or
    ``delete`` so it supersedes exactly what this read saw.
    """

    __slots__ = ("values", "_clock", "_context", "_entries", "_ts", "_record")

    def __init__(
        self,
        values: list[bytes],
        clock: Mapping[str, int] | None = None,
        entries: list | None = None,
        context: bytes | None = None,
        timestamp: int | None = None,
    ) -> None:
        self.values = values
        self._clock = clock
        self._context = context
        self._entries = entries
        self._ts = timestamp
        self._record: bytes | None = None

    @classmethod
    def of_record(cls, value: bytes, record: bytes) -> "Result":
        """A one-value read whose clock is decoded from ``record`` only if asked for (most reads never do)."""
        res = cls([value])
        res._record = record
        return res

    def _decode(self) -> None:
        record = self._record
        if record is not None:  # a record that does not decode raises CorruptRecord every time it is asked
            self._clock, self._entries = decode_parts(record)
            self._record = None

    @property
    def timestamp(self) -> int:
        """Latest HLC timestamp among the values (see ``ringkv.quorum.hlc``)."""
        if self._ts is None:
            self._decode()
            self._ts = max((e[2] for e in self._entries or () if e[3] is not None), default=0)
        return self._ts

    @property
    def value(self) -> bytes:
        if len(self.values) == 1:
            return self.values[0]
        raise ConflictError(f"key has {len(self.values)} concurrent siblings; read .values and put the resolution with .context", self.values)

    @property
    def siblings(self) -> bool:
        """True when concurrent writes left more than one value."""
        return len(self.values) > 1

    @property
    def context(self) -> bytes:
        if self._context is None:
            self._decode()
            self._context = encode_context(self._clock or {})
        return self._context

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return sorted(self.values) == sorted(other.values) and self.context == other.context

    def __repr__(self) -> str:
        shown = self.values[0] if len(self.values) == 1 else self.values
        return f"Result({shown!r:.200})"
