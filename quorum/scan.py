"""Scanning a whole keyspace across the cluster: paged, merged from R replicas.

A scan walks the ring's pieces in storage-key order (hash order). For each
piece, the R replicas of that piece are asked for the same page of stored
records; the pages are merged as a quorum read merges one key: a key any of
them holds is in the result, differing copies are merged. A replica whose
page was full may hold keys beyond its last that the others did not send,
so a merged page ends at the earliest such last key and the next page
starts just after it. The cursor is a storage key, so a scan resumes
anywhere and membership changes between pages only change who answers.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from typing import TYPE_CHECKING, Callable, Optional

from ringkv.codec import decode_record, encode_record
from ringkv.errors import BadRequest, QuorumError
from ringkv.hashing import RING_SIZE, token_bytes
from ringkv.keys import as_optional_count
from ringkv.quorum.messages import KvScan, KvScanPage, ReplicaScan, ReplicaScanPage
from ringkv.quorum.plan import Tally, merge_records
from ringkv.wire import Message

if TYPE_CHECKING:
    from ringkv.quorum.coordinator import Coordinator

__all__ = ["Scanner", "gather_replies", "merge_rows", "SCAN_PAGE"]

#: Records per page, at most.
SCAN_PAGE = 1000
#: Bytes of records a replica's page stops at.
PAGE_BYTES = 1 << 20
#: Empty ring pieces one request may walk before it answers with a cursor (keeps requests short).
MAX_PIECES = 64


async def gather_replies(c: "Coordinator", replicas: list[str], r: int, local: Callable[[], Message], remote: Message, deadline: float) -> dict[str, Message]:
    """Ask ``replicas`` (this node answers itself with ``local()``); return once R answered, else QuorumError."""
    view = c.view
    tally = Tally(r, len(replicas))
    answers: dict[str, Message] = {}
    pending: dict[asyncio.Future, str] = {}
    for node in replicas:
        if node == view.node_id:
            answers[node] = local()
            tally.success(node)
        elif view.is_alive(node):
            pending[c._call_future(node, remote, deadline)] = node
        else:
            tally.failure(node)
    try:
        while pending and not tally.met and not tally.impossible:
            done, _ = await asyncio.wait(pending, timeout=max(0.0, c._remaining(deadline)), return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
            for fut in done:
                node = pending.pop(fut)
                if fut.exception() is None:
                    answers[node] = fut.result()
                    tally.success(node)
                else:
                    tally.failure(node)
    finally:
        for fut in pending:
            fut.cancel()
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    if not tally.met:
        raise QuorumError(acks=len(tally.ok), required=r, failed=tally.failed + list(pending.values()))
    return answers


def merge_rows(pages: list[tuple[list[tuple[bytes, bytes]], bool]], lww: bool) -> tuple[list[tuple[bytes, bytes]], Optional[bytes]]:
    """Replicas' pages of ``(storage key, record)`` as one: ``(rows up to the safe cut, cut)``.

    ``cut`` is None when no page was full (every replica reached the end).
    Equal copies are passed on as stored; differing ones are merged.
    """
    by_key: dict[bytes, list[bytes]] = {}
    cut: Optional[bytes] = None
    for rows, full in pages:
        for k, raw in rows:
            by_key.setdefault(k, []).append(raw)
        if full and rows and (cut is None or rows[-1][0] < cut):
            cut = rows[-1][0]
    out = []
    for k in sorted(by_key):
        if cut is not None and k > cut:
            break
        raws = by_key[k]
        raw = raws[0]
        if any(x != raw for x in raws[1:]):
            raw = encode_record(merge_records([decode_record(x) for x in raws], lww))
        out.append((k, raw))
    return out, cut


class Scanner:
    """``kv.scan`` on a coordinator, and the replica side ``replica.scan``."""

    def __init__(self, coordinator: "Coordinator") -> None:
        self.c = coordinator

    async def scan(self, msg: KvScan, deadline: float) -> KvScanPage:
        table = self.c.table(msg.keyspace)
        if table.feed:
            raise BadRequest("feed entries are read with feed iteration, not kv.scan")
        info = table.info
        r = as_optional_count(msg.r, "r", info.n) or info.r
        limit = max(1, min(int(msg.limit), SCAN_PAGE))
        pieces = self.c.view.ring.segments(info.n)  # type: ignore[attr-defined]
        start = msg.start
        if not pieces:
            return KvScanPage([], [], None)
        i = bisect_right([p[0] for p in pieces], int.from_bytes(start[:8].ljust(8, b"\0"), "big")) - 1
        for i in range(max(0, i), min(len(pieces), i + MAX_PIECES)):
            _, hi, replicas = pieces[i]
            end = token_bytes(hi) if hi < RING_SIZE else None
            req = ReplicaScan(table.wire_name, start, end, limit)
            answers = await gather_replies(self.c, list(replicas), r, lambda: self.replica_scan(req), req, deadline)
            rows, cut = merge_rows([(list(zip(a.keys, a.records)), a.full) for a in answers.values()], table.lww)  # type: ignore[attr-defined]
            nxt = cut + b"\0" if cut is not None else end
            if rows or nxt is None:
                return KvScanPage([k[8:] for k, _ in rows], [v for _, v in rows], nxt)
            start = nxt
        return KvScanPage([], [], start)

    def replica_scan(self, msg: ReplicaScan) -> ReplicaScanPage:
        table = self.c.table(msg.keyspace)
        limit = max(1, min(int(msg.limit), SCAN_PAGE))
        if msg.end is not None and msg.end <= msg.start:
            return ReplicaScanPage([], [], False)
        rows, full = self.c.replica.storage.scan_page(table.cf, msg.start, msg.end, limit=limit, max_bytes=PAGE_BYTES)
        return ReplicaScanPage([k for k, _ in rows], [v for _, v in rows], full)
