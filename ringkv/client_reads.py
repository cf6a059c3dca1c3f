"""Quorum reads the client coordinates itself.

A ``kv.get`` sent to a node costs that node a decode, a ring walk, a local
read, a message to each other replica, their answers and a merge, on top of
the replicas' own reads. A client that knows the ring and the keyspace's
N, R and conflict mode can do the coordinator's part itself: it asks the
key's N replicas for their stored records (one ``kv.read_many`` per node
per loop turn, whatever the number of reads in flight), merges the first R
answers exactly as a coordinator would, and sends the merged record to the
replicas that answered with a stale copy (read repair). The nodes then only
read RocksDB.

Each ``kv.read_many`` carries the digest of the client's ring and the
keyspace settings it assumed; a node that sees a different ring or
keyspace answers ``Unavailable``. Whenever such a read cannot be completed
(R answers not reached, a node refusing, an unknown keyspace) the client
asks a coordinator with ``kv.get`` instead, so the outcome and errors are
the ones a coordinated read gives.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable, Optional

from ringkv.codec import decode_record, encode_record
from ringkv.errors import ProtocolError, RingKVError, Unavailable, from_wire
from ringkv.keys import as_optional_count
from ringkv.quorum.batching import MAX_READS
from ringkv.quorum.dvv import DVVSet
from ringkv.keyspaces import KeyspaceInfo
from ringkv.quorum.messages import KeyspaceList, KvReadMany, ReplicaPut, ReplicaRecords
from ringkv.quorum.plan import merge_records, stale_replicas
from ringkv.wire import Message

if TYPE_CHECKING:  # pragma: no cover
    from ringkv.client import AsyncClient

__all__ = ["DirectReads", "TurnBatches", "deliver_each", "settings_of"]

#: How long the client trusts its copy of the keyspace list (seconds).
TABLES_EVERY = 2.0


class TurnBatches:
    """Requests for one node collected during a loop turn and sent at its end, as messages of up to ``limit`` items.

    ``message(ring digest, items)`` builds a message; the reply, or the
    error that took its place, goes to ``deliver(items, reply)`` or
    ``fail(items, exc)``.
    """

    def __init__(self, client: "AsyncClient", message: Callable[[bytes, list], Message],
                 deliver: Callable[[list, object], None], fail: Callable[[list, RingKVError], None], limit: int,
                 size: Optional[Callable[[object], int]] = None, max_bytes: int = 0) -> None:
        self._client = client
        self._message, self._deliver, self._fail, self._limit = message, deliver, fail, limit
        #: ``size(item)`` in bytes: a message also stays near ``max_bytes`` (a big item travels alone)
        self._size, self._max_bytes = size, max_bytes
        #: (node address, ring digest) -> items to send at the end of this loop turn
        self._queues: dict[tuple[str, bytes], list] = {}

    def add(self, addr: str, digest: bytes, item: object, timeout: float) -> None:
        queue = self._queues.get((addr, digest))
        if queue is None:
            queue = self._queues[(addr, digest)] = []
            asyncio.get_running_loop().call_soon(self._send, addr, digest, timeout)
        queue.append(item)

    def flush(self) -> None:
        """Send everything queued now (the client is closing)."""
        for addr, digest in list(self._queues):
            self._send(addr, digest, self._client.timeout)
        transport = self._client.transport
        if transport is not None:
            transport.flush()

    def _send(self, addr: str, digest: bytes, timeout: float) -> None:
        items = self._queues.pop((addr, digest), [])
        if not items:
            return  # sent already by flush()
        limit, size, max_bytes = self._limit, self._size, self._max_bytes
        chunk: list = []
        total = 0
        for item in items:
            n = size(item) if size is not None else 0
            if chunk and (len(chunk) >= limit or (size is not None and total + n > max_bytes)):
                self._dispatch(addr, digest, chunk, timeout)
                chunk, total = [], 0
            chunk.append(item)
            total += n
        if chunk:
            self._dispatch(addr, digest, chunk, timeout)

    def _dispatch(self, addr: str, digest: bytes, items: list, timeout: float) -> None:
        transport = self._client.transport
        try:
            if transport is None:
                raise Unavailable("client is not connected")
            req = transport.request_future(addr, self._message(digest, items), timeout)
        except RingKVError as exc:
            self._fail(items, exc)
            return
        req.add_done_callback(lambda f: self._settle(items, f))

    def _settle(self, items: list, req: asyncio.Future) -> None:
        if req.cancelled():
            self._fail(items, Unavailable("request cancelled"))
            return
        exc = req.exception()
        if exc is not None:
            self._fail(items, exc if isinstance(exc, RingKVError) else Unavailable(str(exc)))
            return
        self._deliver(items, req.result())


def settings_of(items: list) -> list[list]:
    """``[keyspace, n, r, w, lww]`` of each keyspace among ``(request, node)`` items, as their requests assumed."""
    tables: dict[str, list] = {}
    for req, _ in items:
        if req.keyspace not in tables:
            tables[req.keyspace] = [req.keyspace, *req.table]
    return list(tables.values())


def deliver_each(items: list, failed: list, ok: Callable[[int, tuple], None]) -> None:
    """Per item of a batch: its request fails with the error the node listed for it, or ``ok(index, item)``."""
    errors = {i: from_wire(code, text) for i, code, text in failed}
    for i, item in enumerate(items):
        if i in errors:
            item[0].fail(errors[i])
            continue
        try:
            ok(i, item)
        except Exception as exc:  # what a node sent breaks this request alone, never the batch or the loop
            item[0].fail(exc if isinstance(exc, RingKVError) else ProtocolError(f"bad answer: {exc}"))


class _Read:
    """One key's read: replicas' records in, the merged record out once R of them answered.

    Replicas nearly always hold the same bytes: a copy equal to the first
    one is neither decoded nor merged again, and needs no repair.
    """

    __slots__ = ("out", "need", "waiting", "records", "ok", "lww", "keyspace", "key", "owner", "first", "same", "table")

    def __init__(self, owner: "DirectReads", keyspace: str, key: bytes, need: int, table: tuple[int, int, int, bool], fut: asyncio.Future) -> None:
        self.owner = owner
        self.keyspace = keyspace
        self.key = key
        self.need = need
        #: the keyspace's settings this read assumes (the nodes check them)
        self.table = table
        self.lww = table[3]
        self.out = fut
        self.waiting = 0
        self.ok = 0
        self.records: dict[str, Optional[DVVSet]] = {}
        #: the first answer's bytes, and whether every answer so far had them
        self.first: Optional[bytes] = None
        self.same = True

    def answer(self, node: str, raw: Optional[bytes]) -> None:
        records = self.records
        if self.ok and raw == self.first:
            records[node] = next(iter(records.values()))
        else:
            try:
                records[node] = None if raw is None else decode_record(raw)
            except RingKVError as exc:
                self.fail(exc)
                return
            if self.ok:
                self.same = False
            else:
                self.first = raw
        self.waiting -= 1
        self.ok += 1
        out = self.out
        try:
            if self.ok == self.need and not out.done():
                if self.same:
                    rec = records[node]
                    out.set_result(rec if rec is not None else DVVSet())
                else:
                    out.set_result(merge_records(records.values(), self.lww))
            if not self.waiting and not self.same and self.ok >= self.need:
                self.owner.repair(self)
        except Exception as exc:  # copies that do not merge: this read fails (a coordinator is asked), nothing else
            if not out.done():
                out.set_exception(ProtocolError(f"replicas' records do not merge: {exc}"))

    def fail(self, exc: BaseException) -> None:
        self.waiting -= 1
        out = self.out
        if not out.done() and self.ok + self.waiting < self.need:
            out.set_exception(exc if isinstance(exc, RingKVError) else Unavailable(str(exc)))
        elif not self.waiting and not self.same and self.ok >= self.need:
            self.owner.repair(self)


class DirectReads:
    """The reads of one :class:`~ringkv.client.AsyncClient`, coordinated in the client."""

    def __init__(self, client: "AsyncClient") -> None:
        self._client = client
        #: keyspace -> (n, r, w, lww) as the cluster listed it
        self._tables: dict[str, tuple[int, int, int, bool]] = {}
        self._tables_at = -1e9
        self._listing: Optional[asyncio.Future] = None
        self._batches = TurnBatches(client, self._message, self._deliver, self._fail, MAX_READS)
        #: ``direct``: reads merged here; ``fallback``: reads a coordinator answered; ``repairs``: stale copies sent
        self.stats = {"direct": 0, "fallback": 0, "repairs": 0}

    async def table(self, keyspace: str) -> Optional[tuple[int, int, int, bool]]:
        """``(n, r, w, lww)`` of ``keyspace``; None when the cluster did not list it (lately)."""
        got = self._tables.get(keyspace)
        if got is not None:
            return got
        loop = asyncio.get_running_loop()
        if loop.time() - self._tables_at < TABLES_EVERY:
            return None  # listed lately without it: a coordinator gives the real answer
        if self._listing is None or self._listing.done():
            self._listing = asyncio.ensure_future(self._list())
        try:
            await asyncio.shield(self._listing)
        except RingKVError:
            return None
        return self._tables.get(keyspace)

    async def _list(self) -> None:
        client = self._client
        reply = await client.call(KeyspaceList(), timeout=client.timeout / 4)  # a slow answer: ask coordinators meanwhile
        infos = [KeyspaceInfo.from_dict(d) for d in reply.keyspaces]  # type: ignore[attr-defined]
        self._tables = {i.name: (i.n, i.r, i.w, i.lww) for i in infos}
        self._tables_at = asyncio.get_running_loop().time()

    def forget(self, keyspace: str) -> None:
        """A node disagreed about ``keyspace`` or the ring: list keyspaces and ring again before the next direct read."""
        if self._tables.pop(keyspace, None) is not None:
            self._tables_at = -1e9
        self._client.stale()

    def start(self, keyspace: str, key: bytes, r: Optional[int], table: tuple[int, int, int, bool], timeout: float) -> Optional[asyncio.Future]:
        """The future of the merged record of ``key``; None when the client's view cannot place it."""
        n, default_r, _, _ = table
        need = as_optional_count(r, "r", n) or default_r
        client = self._client
        ring = client.ring()
        alive, addr_of = client.live_members()
        walk = ring.preference_list(key, n) if len(ring) else []
        targets = [m for m in walk if m in alive and m in addr_of]
        if len(targets) < need:
            return None
        read = _Read(self, keyspace, key, need, table, asyncio.get_running_loop().create_future())
        digest = ring.digest
        for m in targets:
            read.waiting += 1
            self._batches.add(addr_of[m], digest, (read, m), timeout)
        return read.out

    def _message(self, digest: bytes, items: list[tuple[_Read, str]]) -> KvReadMany:
        return KvReadMany(digest, settings_of(items), [[read.keyspace, read.key] for read, _ in items])

    def _deliver(self, items: list[tuple[_Read, str]], reply: object) -> None:
        if not (isinstance(reply, ReplicaRecords) and len(reply.records) == len(items)):
            self._fail(items, Unavailable(f"unexpected answer to kv.read_many: {type(reply).__name__}"))
            return
        records = reply.records
        deliver_each(items, reply.failed, lambda i, item: item[0].answer(item[1], records[i]))

    def _fail(self, items: list[tuple[_Read, str]], exc: RingKVError) -> None:
        for read, _ in items:
            read.fail(exc)
        if isinstance(exc, Unavailable):
            self.forget(items[0][0].keyspace)

    def repair(self, read: _Read) -> None:
        """Every replica asked has answered: send the merged record to those whose copy differs."""
        merged = merge_records(read.records.values(), read.lww)
        stale = stale_replicas(read.records, merged)
        if not stale:
            return
        transport = self._client.transport
        _, addr_of = self._client.live_members()
        raw = encode_record(merged)
        for node in stale:
            addr = addr_of.get(node)
            if addr is None or transport is None:
                continue
            self.stats["repairs"] += 1
            try:
                fut = transport.request_future(addr, ReplicaPut(read.keyspace, read.key, raw, None), 5.0)
            except RingKVError:
                continue  # anti-entropy or the next read will try again
            fut.add_done_callback(_ignore)


def _ignore(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()
