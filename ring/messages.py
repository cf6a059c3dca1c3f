"""Wire messages for streaming ranges between owners."""

from __future__ import annotations

from ringkv.errors import ProtocolError
from ringkv.wire import Message, check_pairs, message

__all__ = ["StreamPull", "StreamChunk", "StreamPush"]


@message("stream.pull")
class StreamPull(Message):
    """Ask a current owner for records of ``table`` with hash in ``[lo, last]``, after storage key ``after``."""

    table: str
    lo: int
    last: int
    after: bytes | None
    max_bytes: int

    def check(self) -> None:
        if not (0 <= self.lo <= self.last < 1 << 64) or self.max_bytes < 1:
            raise ProtocolError("stream.pull: bad range")


@message("stream.chunk")
class StreamChunk(Message):
    """``entries``: ``[key, record]``; ``after``: resume point; ``done``: range complete."""

    entries: list
    after: bytes | None
    done: bool

    def check(self) -> None:
        check_pairs(self.entries, "stream.chunk")


@message("stream.push")
class StreamPush(Message):
    """A leaving owner hands records of ``table`` to a new owner (merged on arrival)."""

    table: str
    entries: list

    def check(self) -> None:
        check_pairs(self.entries, "stream.push")
