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
from typing import TYPE_CHECKING, Optional

from ringkv.codec import decode_record, encode_record
from ringkv.errors import RingKVError, Unavailable, from_wire
from ringkv.keys import as_optional_count
from ringkv.quorum.batching import MAX_READS
from ringkv.quorum.dvv import DVVSet
from ringkv.quorum.messages import KvReadMany, ReplicaPut, ReplicaRecords
from ringkv.quorum.plan import merge_records, stale_replicas

if TYPE_CHECKING:  # pragma: no cover
    from ringkv.client import AsyncClient

__all__ = ["DirectReads"]

#: How long the client trusts its copy of the keyspace list (seconds).
TABLES_EVERY = 2.0


class _Read:
    """One key's read: replicas' records in, the merged record out once R of them answered."""

    __slots__ = ("out", "need", "waiting", "records", "ok", "lww", "keyspace", "key", "owner")

    def __init__(self, owner: "DirectReads", keyspace: str, key: bytes, need: int, lww: bool, fut: asyncio.Future) -> None:
        self.owner = owner
        self.keyspace = keyspace
        self.key = key
        self.need = need
        self.lww = lww
        self.out = fut
        self.waiting = 0
        self.ok = 0
        self.records: dict[str, Optional[DVVSet]] = {}

    def answer(self, node: str, raw: Optional[bytes]) -> None:
        try:
            self.records[node] = None if raw is None else decode_record(raw)
        except RingKVError as exc:
            self.fail(exc)
            return
        self.waiting -= 1
        self.ok += 1
        out = self.out
        if self.ok == self.need and not out.done():
            out.set_result(merge_records(self.records.values(), self.lww))
        if not self.waiting and self.ok >= self.need:
            self.owner.repair(self)

    def fail(self, exc: BaseException) -> None:
        self.waiting -= 1
        out = self.out
        if not out.done() and self.ok + self.waiting < self.need:
            out.set_exception(exc if isinstance(exc, RingKVError) else Unavailable(str(exc)))
        elif not self.waiting and self.ok >= self.need:
            self.owner.repair(self)


class DirectReads:
    """The reads of one :class:`~ringkv.client.AsyncClient`, coordinated in the client."""

    def __init__(self, client: "AsyncClient") -> None:
        self._client = client
        #: keyspace -> (n, r, lww) as the cluster listed it
        self._tables: dict[str, tuple[int, int, bool]] = {}
        self._tables_at = -1e9
        self._listing: Optional[asyncio.Future] = None
        #: (node address, ring digest) -> reads to send at the end of this loop turn
        self._queues: dict[tuple[str, bytes], list[tuple[_Read, str]]] = {}
        #: ``direct``: reads merged here; ``fallback``: reads a coordinator answered; ``repairs``: stale copies sent
        self.stats = {"direct": 0, "fallback": 0, "repairs": 0}

    async def table(self, keyspace: str) -> Optional[tuple[int, int, bool]]:
        """``(n, r, lww)`` of ``keyspace``; None when the cluster did not list it (lately)."""
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
        infos = await self._client.akeyspaces()
        self._tables = {i.name: (i.n, i.r, i.lww) for i in infos}
        self._tables_at = asyncio.get_running_loop().time()

    def forget(self, keyspace: str) -> None:
        """A node disagreed about ``keyspace`` or the ring: list keyspaces and ring again before the next direct read."""
        if self._tables.pop(keyspace, None) is not None:
            self._tables_at = -1e9
        self._client.stale()

    def start(self, keyspace: str, key: bytes, r: Optional[int], table: tuple[int, int, bool], timeout: float) -> Optional[asyncio.Future]:
        """The future of the merged record of ``key``; None when the client's view cannot place it."""
        n, default_r, lww = table
        need = as_optional_count(r, "r", n) or default_r
        client = self._client
        ring = client.ring()
        alive, addr_of = client.live_members()
        walk = ring.preference_list(key, n) if len(ring) else []
        targets = [m for m in walk if m in alive and m in addr_of]
        if len(targets) < need:
            return None
        loop = asyncio.get_running_loop()
        read = _Read(self, keyspace, key, need, lww, loop.create_future())
        digest = ring.digest
        queues = self._queues
        for m in targets:
            qkey = (addr_of[m], digest)
            queue = queues.get(qkey)
            if queue is None:
                queue = queues[qkey] = []
                loop.call_soon(self._send, qkey, timeout)
            queue.append((read, m))
            read.waiting += 1
        return read.out

    def _send(self, qkey: tuple[str, bytes], timeout: float) -> None:
        addr, digest = qkey
        items = self._queues.pop(qkey, [])
        for i in range(0, len(items), MAX_READS):
            self._dispatch(addr, digest, items[i : i + MAX_READS], timeout)

    def _dispatch(self, addr: str, digest: bytes, items: list[tuple[_Read, str]], timeout: float) -> None:
        tables: dict[str, list] = {}
        for read, _ in items:
            if read.keyspace not in tables:
                n, r, lww = self._tables.get(read.keyspace) or (0, 0, read.lww)
                tables[read.keyspace] = [read.keyspace, n, r, lww]
        msg = KvReadMany(digest, list(tables.values()), [[read.keyspace, read.key] for read, _ in items])
        transport = self._client.transport
        try:
            if transport is None:
                raise Unavailable("client is not connected")
            req = transport.request_future(addr, msg, timeout)
        except RingKVError as exc:
            for read, _ in items:
                read.fail(exc)
            return
        req.add_done_callback(lambda f: self._settle(items, f))

    def _settle(self, items: list[tuple[_Read, str]], req: asyncio.Future) -> None:
        if req.cancelled():
            for read, _ in items:
                read.fail(Unavailable("read cancelled"))
            return
        exc = req.exception()
        reply = req.result() if exc is None else None
        if exc is None and not (isinstance(reply, ReplicaRecords) and len(reply.records) == len(items)):
            exc = Unavailable(f"unexpected answer to kv.read_many: {type(reply).__name__}")
        if exc is not None:
            for read, _ in items:
                read.fail(exc)
            if isinstance(exc, Unavailable):
                self.forget(items[0][0].keyspace)
            return
        assert isinstance(reply, ReplicaRecords)
        failed = {i: from_wire(code, text) for i, code, text in reply.failed}
        for i, (read, node) in enumerate(items):
            if i in failed:
                read.fail(failed[i])
            else:
                read.answer(node, reply.records[i])

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
