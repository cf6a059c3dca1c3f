"""Streaming hash ranges between owners: chunked, throttled, resumable, observable.

A transfer moves one ``[lo, hi)`` range of one table. The receiver *pulls*
chunks from a current owner (join, replace, re-replication after a remove),
or a leaving owner *pushes* them. Records are merged on arrival, so a resent
chunk is harmless; the last storage key done is persisted after every chunk,
so a transfer interrupted by a crash of either side resumes where it stopped
instead of from zero. Keys are spread uniformly by hash, so the hash of the
last key done tells how far a transfer has come (and its ETA).

Records travel in their stored encoding and are applied a chunk at a time.
A pull asks for the next chunk before applying the one it holds, and a push
keeps two chunks in flight, so neither side waits on the other; the position
saved is always that of the last chunk applied.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

import msgpack

from ringkv.errors import RingKVError, Unavailable
from ringkv.hashing import RING_SIZE, token_bytes
from ringkv.quorum.tables import Table
from ringkv.ring.handoff import Move
from ringkv.ring.messages import StreamChunk, StreamPull, StreamPush
from ringkv.storage import META_CF, Storage
from ringkv.wire import Message

__all__ = ["Streamer", "Transfer", "StreamConfig"]

_XFER = b"xfer:"


@dataclass(frozen=True)
class StreamConfig:
    #: Bandwidth cap for all transfers of a node, MB/s (None: unthrottled).
    mb_per_s: Optional[float] = None
    #: Bytes of records per chunk.
    chunk_bytes: int = 256 * 1024
    #: Transfers a node runs at once.
    max_transfers: int = 2
    #: Seconds to wait for one chunk.
    chunk_timeout: float = 15.0


@dataclass
class Transfer:
    tid: str
    kind: str
    table: str
    lo: int
    hi: int
    peer: str = ""
    keys: int = 0
    bytes: int = 0
    #: bytes already streamed before a restart resumed this transfer
    resumed_from: int = 0
    position: int = 0
    started: float = 0.0
    finished: Optional[float] = None
    error: str = ""

    def fraction(self) -> float:
        span = self.hi - self.lo
        if self.finished is not None or span <= 0:
            return 1.0
        return min(1.0, max(0.0, (self.position - self.lo) / span))

    def as_dict(self, now: float) -> dict:
        elapsed = max(1e-9, (self.finished or now) - self.started)
        f = self.fraction()
        return {
            "kind": self.kind,
            "table": self.table,
            "range": [self.lo, self.hi - 1],
            "peer": self.peer,
            "keys": self.keys,
            "bytes": self.bytes,
            "resumed_from_bytes": self.resumed_from,
            "done": self.finished is not None,
            "fraction": round(f, 4),
            "rate_bytes_per_s": round(self.bytes / elapsed, 1),
            "eta_s": None if f <= 0 else round(elapsed * (1 - f) / f, 1),
            "error": self.error,
        }


def _retrieve(task: asyncio.Future) -> None:
    """Consume the outcome of an abandoned read-ahead (no "never retrieved" warning)."""
    if not task.cancelled():
        task.exception()


@dataclass
class _Bucket:
    rate: Optional[float]
    level: float = 0.0
    stamp: float = 0.0


class Streamer:
    """Runs transfers for one node; ``apply(table, entries)`` merges a chunk of ``[key, raw]``."""

    def __init__(
        self,
        storage: Storage,
        apply: Callable[[Table, list], object],
        request: Callable[[str, Message, float], Awaitable[Message]],
        addr: Callable[[str], str],
        config: StreamConfig | None = None,
    ) -> None:
        self.storage = storage
        self._apply = apply
        self._request = request
        self._addr = addr
        self.config = config or StreamConfig()
        self.transfers: dict[str, Transfer] = {}
        self._slots = asyncio.Semaphore(self.config.max_transfers)
        self._active: set[str] = set()
        rate = self.config.mb_per_s
        self._bucket = _Bucket(rate * 1024 * 1024 if rate else None)

    # -- shared ------------------------------------------------------------

    async def _throttle(self, nbytes: int) -> None:
        b = self._bucket
        if not b.rate:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        b.level = max(0.0, b.level - (now - b.stamp) * b.rate) + nbytes
        b.stamp = now
        wait = b.level / b.rate - 1.0  # allow a one-second burst
        if wait > 0:
            await asyncio.sleep(wait)  # rate limiting, by design

    def _load(self, tid: str) -> tuple[Optional[bytes], int, int, bool]:
        raw = self.storage.meta_get(_XFER + tid.encode())
        if not raw:
            return None, 0, 0, False
        after, keys, nbytes, done = msgpack.unpackb(raw)
        return after, keys, nbytes, done

    def _save(self, tid: str, after: Optional[bytes], t: Transfer, done: bool = False) -> None:
        self.storage.meta_put(_XFER + tid.encode(), msgpack.packb([after, t.keys, t.bytes, done]), sync=False)

    def clear(self) -> None:
        """Forget every transfer's progress (the change they served is complete)."""
        b = self.storage.batch()
        b.delete_range(META_CF, _XFER, _XFER[:-1] + b";")
        self.storage.write(b)
        done = [tid for tid, t in self.transfers.items() if t.finished is not None]
        for tid in done[: max(0, len(done) - 1000)]:  # status keeps the recent history
            del self.transfers[tid]

    def _begin(self, kind: str, table: Table, move: Move, peer: str) -> tuple[Transfer, Optional[bytes]]:
        tid = f"{kind}:{table.wire_name}:{move.lo:x}:{move.hi:x}"
        if tid in self._active:
            raise Unavailable(f"range {tid} is already being transferred")
        after, keys, nbytes, done = self._load(tid)
        now = asyncio.get_running_loop().time()
        t = Transfer(tid, kind, table.wire_name, move.lo, move.hi, peer, keys, nbytes, nbytes, move.lo, now)
        if after is not None:
            t.position = int.from_bytes(after[:8], "big")
        if done:
            t.finished = now  # completed before a restart: nothing to resend
        self.transfers[tid] = t
        self._active.add(tid)
        return t, after

    def _end(self, t: Transfer, after: Optional[bytes]) -> None:
        t.finished = asyncio.get_running_loop().time()
        self._active.discard(t.tid)
        self._save(t.tid, after, t, done=True)

    def status(self) -> list[dict]:
        now = asyncio.get_running_loop().time()
        return [t.as_dict(now) for t in self.transfers.values()]

    def busy(self) -> bool:
        return bool(self._active)

    # -- reading local ranges ---------------------------------------------

    def read_chunk(self, table: Table, lo: int, hi: int, after: Optional[bytes], max_bytes: int) -> tuple[list, Optional[bytes], bool]:
        """Records of ``[lo, hi)`` after storage key ``after``: ``(entries, last key, done)``."""
        start = token_bytes(lo) if after is None else max(token_bytes(lo), after + b"\x00")
        end = token_bytes(hi) if hi < RING_SIZE else None
        entries, size, last = [], 0, after
        for skey, raw in self.storage.scan(table.cf, start, end, chunk=256):
            if size >= max_bytes:
                return entries, last, False
            entries.append([skey[8:], raw])
            size += len(skey) + len(raw)
            last = skey
        return entries, last, True

    def serve_pull(self, table: Table, msg: StreamPull) -> StreamChunk:
        entries, last, done = self.read_chunk(table, msg.lo, msg.last + 1, msg.after, min(msg.max_bytes, 8 * 1024 * 1024))
        return StreamChunk(entries, last, done)

    def accept(self, table: Table, entries: list) -> int:
        """Merge a chunk of ``[key, stored record]`` into ours; returns its length."""
        if entries:
            self._apply(table, entries)
        return len(entries)

    # -- transfers ---------------------------------------------------------

    async def _fetch(self, t: Transfer, table: Table, move: Move, after: Optional[bytes], sources: Callable[[], list[str]]) -> StreamChunk:
        """The chunk after ``after`` from whichever current owner answers."""
        for src in sources():
            try:
                chunk = await self._request(
                    self._addr(src),
                    StreamPull(table.wire_name, move.lo, move.hi - 1, after, self.config.chunk_bytes),
                    self.config.chunk_timeout,
                )
                t.peer = src
                return chunk  # type: ignore[return-value]
            except RingKVError as exc:
                t.error = str(exc)
        raise Unavailable(f"no live owner to stream {t.tid} from: {t.error}")

    async def pull(self, table: Table, move: Move, sources: Callable[[], list[str]]) -> Transfer:
        """Receive ``move`` from whichever current owner answers; resumable."""
        async with self._slots:
            t, after = self._begin("pull", table, move, "")
            ahead: Optional[asyncio.Task] = None
            try:
                if t.finished is not None:
                    return t
                chunk = await self._fetch(t, table, move, after, sources)
                while True:
                    nbytes = sum(len(k) + len(v) for k, v in chunk.entries)
                    if not chunk.done:
                        await self._throttle(nbytes)
                        ahead = asyncio.ensure_future(self._fetch(t, table, move, chunk.after, sources))
                        for _ in range(2):  # let the request reach the socket before applying blocks the loop
                            await asyncio.sleep(0)
                    self.accept(table, chunk.entries)
                    t.keys += len(chunk.entries)
                    t.bytes += nbytes
                    if chunk.after is not None:
                        after = chunk.after
                        t.position = int.from_bytes(after[:8], "big")
                        self._save(t.tid, after, t)  # only once the chunk is written
                    if chunk.done:
                        self._end(t, after)
                        return t
                    assert ahead is not None
                    chunk, ahead = await ahead, None
            finally:
                if ahead is not None:
                    ahead.cancel()
                    ahead.add_done_callback(_retrieve)
                self._active.discard(t.tid)

    async def push(self, table: Table, move: Move, target: str) -> Transfer:
        """Hand our copy of ``move`` to ``target`` (a leaving owner's side); resumable.

        Two chunks are in flight, so the target never waits for the next one;
        positions are saved in order, each once its chunk is acknowledged.
        """
        async with self._slots:
            t, after = self._begin("push:" + target, table, move, target)
            t.kind = "push"
            inflight: deque[tuple[asyncio.Future, bytes, int, int]] = deque()
            try:
                if t.finished is not None:
                    return t
                cursor, done = after, False
                while not done or inflight:
                    if not done and len(inflight) < 2:
                        entries, last, done = self.read_chunk(table, move.lo, move.hi, cursor, self.config.chunk_bytes)
                        if entries:
                            nbytes = sum(len(k) + len(v) for k, v in entries)
                            sent = asyncio.ensure_future(self._request(self._addr(target), StreamPush(table.wire_name, entries), self.config.chunk_timeout))
                            inflight.append((sent, last, len(entries), nbytes))  # type: ignore[arg-type]
                            cursor = last
                            await self._throttle(nbytes)
                        continue
                    sent, last, n, nbytes = inflight[0]
                    await sent
                    inflight.popleft()
                    t.keys += n
                    t.bytes += nbytes
                    after = last
                    t.position = int.from_bytes(last[:8], "big")
                    self._save(t.tid, after, t)
                self._end(t, after)
                return t
            finally:
                for sent, *_ in inflight:
                    sent.cancel()
                    sent.add_done_callback(_retrieve)
                self._active.discard(t.tid)
