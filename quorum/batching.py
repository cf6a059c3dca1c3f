"""Replica requests to one peer, coalesced per event-loop turn into one message.

With many client requests in flight, a coordinator sends each replica many
``replica.put`` and ``replica.read`` per turn. Sent as one
``replica.put_many`` / ``replica.read_many`` they cost one message to build,
route and answer (and, for writes, one RocksDB batch on the replica). Every
request still gets its own future, failing alone: the quorum logic above
(acks, fallbacks, hints, read repair) is the same as for single messages.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from ringkv.errors import ProtocolError, RingKVError, Timeout, TooLarge, from_wire
from ringkv.quorum.messages import ReplicaPut, ReplicaPutMany, ReplicaPutManyDone, ReplicaRead, ReplicaReadMany, ReplicaRecord, ReplicaRecords
from ringkv.wire import Message

__all__ = ["ReplicaBatcher"]

_Item = tuple[Message, float, asyncio.Future]

#: Bytes of records per ``replica.put_many``, about (a message stays far below the frame limit).
MAX_BYTES = 4 << 20
#: Keys per ``replica.read_many`` (its reply carries their records).
MAX_READS = 256

#: How a turn's requests of one type travel together.
_MANY: dict[type, Callable[[list], Message]] = {
    ReplicaPut: lambda msgs: ReplicaPutMany([[m.keyspace, m.key, m.record, m.hint_for] for m in msgs]),
    ReplicaRead: lambda msgs: ReplicaReadMany([[m.keyspace, m.key] for m in msgs]),
}


class ReplicaBatcher:
    """Collects ``replica.put`` / ``replica.read`` per destination during a loop turn; sends them at its end."""

    def __init__(self, request_future: Callable[[str, Message, float], asyncio.Future], addr: Callable[[str], str], stats: dict) -> None:
        self._request_future = request_future
        self._addr = addr
        self._queues: dict[tuple[str, type], list[_Item]] = {}
        #: ``replica_messages`` sent and ``replica_requests`` they carried (their ratio is the batching achieved)
        self.stats = stats
        stats.setdefault("replica_messages", 0)
        stats.setdefault("replica_requests", 0)

    def request(self, node: str, msg: ReplicaPut | ReplicaRead, deadline: float) -> asyncio.Future:
        """The reply to ``msg`` (a ``replica.record`` for a read), sent to ``node`` with its turn's others."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        key = (node, type(msg))
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = []
            loop.call_soon(self._send, key)
        queue.append((msg, deadline, fut))
        return fut

    def _send(self, key: tuple[str, type]) -> None:
        node, kind = key
        for chunk in _chunks(self._queues.pop(key, []), kind):
            self._dispatch(node, kind, chunk)

    def _dispatch(self, node: str, kind: type, items: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        budget = max(d for _, d, _ in items) - loop.time()
        try:
            if budget <= 0:
                raise Timeout("deadline passed")
            msg = items[0][0] if len(items) == 1 else _MANY[kind]([m for m, _, _ in items])
            req = self._request_future(self._addr(node), msg, budget)
        except RingKVError as exc:
            _fail(items, exc)
            return
        self.stats["replica_messages"] += 1
        self.stats["replica_requests"] += len(items)
        req.add_done_callback(lambda f: self._settle(node, kind, items, f))

    def _settle(self, node: str, kind: type, items: list[_Item], req: asyncio.Future) -> None:
        if len(items) > 1 and not req.cancelled() and isinstance(req.exception(), TooLarge):
            for item in items:  # together they overflow a message (big records, or their reply): one by one
                self._dispatch(node, kind, [item])
            return
        _settle(items, req)


def _chunks(items: list[_Item], kind: type) -> list[list[_Item]]:
    """A turn's requests as messages of bounded size (a big record travels alone)."""
    if kind is ReplicaRead:
        return [items[i : i + MAX_READS] for i in range(0, len(items), MAX_READS)]
    out: list[list[_Item]] = [[]]
    size = 0
    for item in items:
        n = len(item[0].record) + len(item[0].key)  # type: ignore[attr-defined]
        if out[-1] and size + n > MAX_BYTES:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return [c for c in out if c]


def _fail(items: list[_Item], exc: BaseException) -> None:
    for _, _, fut in items:
        if not fut.done():
            fut.set_exception(exc)


def _settle(items: list[_Item], req: asyncio.Future) -> None:
    if req.cancelled():
        for _, _, fut in items:
            fut.cancel()
        return
    exc = req.exception()
    if exc is not None:
        _fail(items, exc)
        return
    reply = req.result()
    failed = {}
    if isinstance(reply, (ReplicaPutManyDone, ReplicaRecords)):
        failed = {i: from_wire(code, text) for i, code, text in reply.failed}
    records = reply.records if isinstance(reply, ReplicaRecords) else None
    if records is not None and len(records) != len(items):
        _fail(items, ProtocolError("replica.records: one record per key expected"))
        return
    for i, (_, _, fut) in enumerate(items):
        if fut.done():
            continue
        if i in failed:
            fut.set_exception(failed[i])
        else:
            fut.set_result(ReplicaRecord(records[i]) if records is not None else reply)
