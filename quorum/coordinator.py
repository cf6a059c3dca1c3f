"""Coordinating quorum reads and writes on a node (the asyncio shell).

Decisions come from :mod:`ringkv.quorum.plan`; this module only moves
messages: it writes locally through :class:`LocalReplica`, fans requests out
over the transport, counts answers against R or W, and keeps working in the
background after answering (late acks, read repair, hinted handoff).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Awaitable, Callable, Optional, Protocol


from ringkv.codec import decode_record, encode_record
from ringkv.errors import BadRequest, ClosedError, QuorumError, RingKVError, Timeout, TooLarge, Unavailable, to_wire
from ringkv.keys import as_optional_count, check_timestamp
from ringkv.keyspaces import KeyspaceInfo
from ringkv.quorum.retries import RetryMemo
from ringkv.quorum.dvv import DVVSet, decode_context, encode_context
from ringkv.quorum.hints import HintStore
from ringkv.quorum.batching import ReplicaBatcher
from ringkv.quorum.messages import KvDone, KvGet, KvPut, KvReadMany, KvReplicate, KvResult, KvWritten, ReplicaPut, ReplicaPutMany, ReplicaPutManyDone, ReplicaRead, ReplicaReadMany, ReplicaRecord, ReplicaRecords
from ringkv.quorum.plan import Tally, merge_records, next_fallback, stale_replicas, write_targets
from ringkv.quorum.replica import Extra, LocalReplica
from ringkv.quorum.tables import Table, resolve_table
from ringkv.wire import Message

__all__ = ["Coordinator", "ClusterView"]


def _result(merged: DVVSet) -> KvResult:
    return KvResult(merged.values, encode_context(merged.clock), merged.timestamp)


def _chain(extras: list) -> Extra:
    """One ``extra`` hook running several (``None`` entries skipped)."""
    hooks = [e for e in extras if e is not None]
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def run(batch, old, new) -> None:
        for h in hooks:
            h(batch, old, new)

    return run

log = logging.getLogger("ringkv.quorum")
#: Tables remembered by name (a client naming endless unknown keyspaces never gets here).
_MAX_TABLES = 1024

Request = Callable[[str, Message, float], Awaitable[Message]]


class ClusterView(Protocol):
    """What the coordinator needs to know about the cluster (the node provides it)."""

    node_id: str

    def walk(self, key: bytes) -> list[str]: ...
    def pending(self, place: bytes, n: int) -> list[str]: ...
    def is_alive(self, node_id: str) -> bool: ...
    def departed(self, node_id: str) -> bool: ...  # left or removed: it will never take its hints
    def addr(self, node_id: str) -> str: ...
    def keyspace(self, name: str) -> KeyspaceInfo: ...
    def settled_on(self, ring: bytes) -> bool: ...  # our ring has that digest, and no owner is pending


class Coordinator:
    """Quorum logic of one node: client requests in, replica traffic out."""

    def __init__(
        self,
        view: ClusterView,
        replica: LocalReplica,
        hints: HintStore,
        request: Request,
        *,
        max_value_size: int,
        max_key_size: int,
        request_future: Optional[Callable[[str, Message, float], asyncio.Future]] = None,
    ) -> None:
        self.view = view
        self.replica = replica
        self.hints = hints
        self._request = request
        self._request_future = request_future or (lambda addr, msg, t: asyncio.ensure_future(request(addr, msg, t)))
        self.max_value_size = max_value_size
        self.max_key_size = max_key_size
        #: request id -> bytes of the record it wrote: a client retry re-sends it, no new dot.
        self._recent: RetryMemo[bytes] = RetryMemo(size=50_000)
        self._background: set[asyncio.Task] = set()
        self._closing = False
        self.stats = {"read_repairs": 0, "hinted_writes": 0, "hints_delivered": 0, "forwarded": 0, "client_reads": 0, "client_copies": 0, "client_fanouts": 0}
        #: ``{is_feed: hook(table, key) -> Extra}``: companion writes per kind of table.
        self.table_hooks: dict[bool, Callable[[Table, bytes], Extra]] = {}
        #: A write's copies to one replica travel with the others of the same loop turn.
        self.batcher = ReplicaBatcher(self._request_future, view.addr, self.stats)
        #: wire name -> its Table, valid while the catalog returns the same KeyspaceInfo
        self._tables: dict[str, Table] = {}

    # -- helpers ---------------------------------------------------------

    def _spawn(self, coro) -> asyncio.Future:
        """Run ``coro`` in the background, cancelled by :meth:`close` (after which nothing new starts)."""
        if self._closing:
            coro.close()
            fut = asyncio.get_running_loop().create_future()
            fut.cancel()
            return fut
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def close(self) -> None:
        self._closing = True
        for t in list(self._background):
            t.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _check_key(self, key: bytes) -> None:
        if len(key) > self.max_key_size:
            raise TooLarge(f"key is {len(key)} bytes; the limit is {self.max_key_size}")

    @staticmethod
    def _remaining(deadline: float) -> float:
        """Seconds left until a loop-time deadline (the loop's clock may be simulated)."""
        return deadline - asyncio.get_running_loop().time()

    def _call_future(self, node: str, msg: Message, deadline: float) -> asyncio.Future:
        """A request to ``node`` as a plain future (fan-out costs no Task per replica)."""
        try:
            budget = self._remaining(deadline)
            if budget <= 0:
                raise Timeout("deadline passed")
            return self._request_future(self.view.addr(node), msg, budget)
        except RingKVError as exc:
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(exc)
            return fut

    async def _call(self, node: str, msg: Message, deadline: float) -> Message:
        return await self._call_future(node, msg, deadline)

    # -- writes ----------------------------------------------------------

    def table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is not None and self.view.keyspace(table.info.name) is table.info:
            return table  # a dropped keyspace raises there; a changed one is resolved anew
        table = resolve_table(name, self.view.keyspace)
        if len(self._tables) >= _MAX_TABLES:
            self._tables.clear()
        self._tables[name] = table
        return table

    async def put(self, req: KvPut, deadline: float, *, extra: Extra = None, walk: Optional[list[str]] = None) -> KvDone:
        """Coordinate a write; ``extra`` adds companion writes to the local batch.

        ``walk``: the ring walk from the key's place, if the caller has it.
        """
        out = self.put_future(req, deadline, extra=extra, walk=walk)
        return out if isinstance(out, KvWritten) else await out

    def put_future(self, req: KvPut, deadline: float, *, extra: Extra = None, walk: Optional[list[str]] = None) -> "asyncio.Future | KvWritten":
        """:meth:`put` as a future: bad input raises here, the quorum's outcome arrives later.

        A write whose copies the client sends (``req.ring``) is answered at
        once: :class:`KvWritten` itself, not a future.

        No coroutine or Task per write: the replicas' answers settle it from
        their callbacks (the server answers ``kv.put`` straight from it).
        """
        table = self.table(req.keyspace)
        info = table.info
        self._check_key(req.key)
        if req.value is not None and len(req.value) > self.max_value_size:
            raise TooLarge(f"value is {len(req.value)} bytes; the limit is {self.max_value_size}")
        w = as_optional_count(req.w, "w", info.n) or info.w
        ctx = None if req.context is None else decode_context(req.context)
        if req.timestamp is not None and not table.lww:
            raise BadRequest("timestamp= is only meaningful in lww keyspaces")
        if walk is None:
            walk = self.view.walk(table.place(req.key))
        me = self.view.node_id
        preferred = walk[: info.n]
        if me not in preferred and not req.forwarded and any(self.view.is_alive(n) for n in preferred):
            return asyncio.ensure_future(self._forward_put(table, req, ctx, extra, walk, w, deadline))
        if req.ring is not None and me in preferred and self.view.settled_on(req.ring) and all(map(self.view.is_alive, preferred)):
            # the client copies it to the other replicas (and asks kv.replicate if it cannot)
            self.stats["client_fanouts"] += 1
            return KvWritten(self._write_record(table, req, ctx, extra, walk)[1], me, info.n, w)
        return self._write_local(table, req, ctx, extra, walk, w, deadline)

    async def _forward_put(self, table: Table, req: KvPut, ctx, extra: Extra, walk: list[str], w: int, deadline: float) -> KvDone:
        """Not a replica of the key: a live replica coordinates it (or, none answering, we hold it)."""
        fwd = dataclasses.replace(req, forwarded=True)
        for node in walk[: table.info.n]:
            if self.view.is_alive(node):
                try:
                    self.stats["forwarded"] += 1
                    return await self._call(node, fwd, deadline)  # type: ignore[return-value]
                except QuorumError:
                    raise
                except Unavailable:
                    continue  # not delivered: another replica may coordinate
                # A Timeout propagates: the write may have been applied there, and
                # coordinating it again elsewhere would make it a second version.
        return await self._write_local(table, req, ctx, extra, walk, w, deadline)

    def _write_local(self, table: Table, req: KvPut, ctx, extra: Extra, walk: list[str], w: int, deadline: float) -> asyncio.Future:
        rec = self._write_record(table, req, ctx, extra, walk)[0]
        return self._replicate(table, req.key, rec, walk, w, deadline)

    def replicate_future(self, req: KvReplicate, deadline: float) -> asyncio.Future:
        """Copy a record this node wrote (``kv.written``) to the key's replicas, as after a write of our own.

        A client that could not get W copies acknowledged itself hands the
        job back here: fallbacks and hints then follow the usual rules.
        """
        table = self.table(req.keyspace)
        self._check_key(req.key)
        w = as_optional_count(req.w, "w", table.info.n) or table.info.w
        rec = decode_record(req.record)
        self.apply(table, req.key, rec)  # ours already holds it (a merge changes nothing), unless it was lost
        walk = self.view.walk(table.place(req.key))
        # no longer an owner (the ring moved meanwhile): our copy does not count towards W
        return self._replicate(table, req.key, rec, walk, w, deadline, counts_self=self.view.node_id in walk[: table.info.n])

    def _write_record(self, table: Table, req: KvPut, ctx, extra: Extra, walk: list[str]) -> tuple[DVVSet, bytes]:
        """Store the write locally with our dot: the record and its bytes (a retry of a request id gets the record it already made)."""
        me = self.view.node_id
        preferred = walk[: table.info.n]
        data = self._recent.get(req.request_id) if req.request_id else None
        if data is not None:
            return decode_record(data), data  # a retry: the record this request made
        hint_for = None
        if me not in preferred:  # every owner unreachable: hold the write as a fallback
            hint_for = next((m for m in preferred if not self.view.is_alive(m)), preferred[0] if preferred else None)
        extras = [extra, self.table_extra(table, req.key), self._hint_extra(hint_for, table.wire_name, req.key) if hint_for else None]
        ts = None if req.timestamp is None else check_timestamp(req.timestamp)
        done = self.replica.write(table.cf, table.skey(req.key), req.value, ctx, lww=table.lww, timestamp=ts, extra=_chain(extras))
        if req.request_id:
            self._recent[req.request_id] = done[1]
        return done

    def _hold_hint(self, table: Table, key: bytes, owner: str) -> bool:
        """Remember that ``owner`` lacks our copy of ``key``; hinted handoff delivers it later. False: nothing to hold."""
        if owner == self.view.node_id or self.replica.storage.get(table.cf, table.skey(key)) is None:
            return False
        batch = self.replica.storage.batch()
        self.hints.add(batch, owner, table.wire_name, key, self.replica.hlc.now())
        self.replica.storage.write(batch)
        self.stats["hinted_writes"] += 1
        return True

    def _late_ack(self, table: Table, key: bytes, owner: str) -> Callable[[asyncio.Future], None]:
        """After answering: a replica that finally fails gets a hint instead."""

        def done(fut: asyncio.Future) -> None:
            if fut.cancelled() or fut.exception() is not None:
                try:
                    self._hold_hint(table, key, owner)
                except ClosedError:
                    pass  # the node is stopping: anti-entropy brings that replica the write later

        return done

    def _hint_extra(self, target: str, wire_name: str, key: bytes) -> Extra:
        def extra(batch, old, new: DVVSet) -> None:
            self.hints.add(batch, target, wire_name, key, self.replica.hlc.now())
            self.stats["hinted_writes"] += 1

        return extra

    def _replicate(self, table: Table, key: bytes, rec: DVVSet, walk: list[str], w: int, deadline: float, *, counts_self: bool = True) -> asyncio.Future:
        """Send our record to the other replicas; the future is :class:`KvDone` once W acked, else QuorumError."""
        info = table.info
        me = self.view.node_id
        loop = asyncio.get_running_loop()
        out = loop.create_future()
        raw = encode_record(rec)
        targets = write_targets(walk, info.n, me, self.view.is_alive)
        used = {me, *(t for t, _ in targets), *walk[: info.n]}
        # pending owners (a joining node, the gainers of a leaving one) must get the write too
        owners_to_be = [p for p in self.view.pending(table.place(key), info.n) if p not in used]
        targets += [(p, None) for p in owners_to_be]
        used.update(owners_to_be)
        # W acks plus one per future owner; when the current owners are too few (a cluster
        # whose other members are still joining), the future owners' acks make up W.
        tally = Tally(max(w, min(w + len(owners_to_be), len(targets) + 1)), len(targets) + 1)
        if counts_self:
            tally.success(me)
        else:
            tally.expected -= 1
        pending: dict[asyncio.Future, tuple[str, Optional[str]]] = {}
        timer: list[Optional[asyncio.TimerHandle]] = [None]

        def settle() -> None:
            """Answer once: W met, or no way left to meet it (failures, or the deadline)."""
            if timer[0] is not None:
                timer[0].cancel()
            if tally.met:
                out.set_result(KvDone(len(tally.ok)))
            else:
                out.set_exception(QuorumError(acks=len(tally.ok), required=tally.required, failed=tally.failed + [n for n, _ in pending.values()]))
            for fut, (node, hint_for) in pending.items():  # late answers arrive on their own
                if not tally.met:
                    fut.cancel()
                fut.add_done_callback(self._late_ack(table, key, hint_for or node))
            pending.clear()

        def answered(fut: asyncio.Future) -> None:
            if out.done():
                return  # settled: _late_ack has it
            node, hint_for = pending.pop(fut)
            if not fut.cancelled() and fut.exception() is None:
                tally.success(node)
            else:
                # A failed replica: hand its copy to the next live fallback, with a hint,
                # or keep the hint ourselves when there is no fallback.
                owner = hint_for or node
                fb = next_fallback(walk, info.n, used, self.view.is_alive)
                if fb is not None and self._remaining(deadline) > 0:
                    used.add(fb)
                    launch(fb, owner)
                    tally.expected += 1
                    tally.failure(node)
                elif self._hold_hint(table, key, owner) and owner in owners_to_be and tally.required > w:
                    # a future owner (joining) gets it by hinted handoff: no ack needed
                    # from it, but never fewer than W acks
                    tally.required -= 1
                    tally.expected -= 1
                else:
                    tally.failure(node)
            if tally.met or not pending:
                settle()

        def launch(node: str, hint_for: Optional[str]) -> None:
            fut = self.batcher.request(node, ReplicaPut(table.wire_name, key, raw, hint_for), deadline)
            pending[fut] = (node, hint_for)
            fut.add_done_callback(answered)

        for node, hint_for in targets:
            if node == me:
                self._hold_hint(table, key, hint_for)  # nobody else to hold it: keep it ourselves
                tally.expected -= 1
            else:
                launch(node, hint_for)
        if tally.met or not pending:
            settle()
        else:
            timer[0] = loop.call_at(deadline, lambda: out.done() or settle())
        return out

    # -- reads -----------------------------------------------------------

    async def get(self, req: KvGet, deadline: float) -> KvResult:
        return await self.get_future(req, deadline)

    def get_future(self, req: KvGet, deadline: float) -> asyncio.Future:
        """:meth:`get` as a future (the server answers ``kv.get`` straight from it)."""
        return self.read_future(self.table(req.keyspace), req.key, req.r, deadline, _result)

    async def read(self, table: Table, key: bytes, r: Optional[int], deadline: float) -> DVVSet:
        """Quorum read of one record: merged from R replicas, stale ones repaired after."""
        return await self.read_future(table, key, r, deadline)

    def read_future(self, table: Table, key: bytes, r: Optional[int], deadline: float, shape: Optional[Callable[[DVVSet], object]] = None) -> asyncio.Future:
        """:meth:`read` as a future of the merged record, or of ``shape(merged)``.

        Bad input raises here. Every preferred replica is asked; the future is
        settled by the R-th answer, from the replies' callbacks (no Task, no
        ``asyncio.wait``), and read repair waits for the slower ones.
        """
        info = table.info
        self._check_key(key)
        r = as_optional_count(r, "r", info.n) or info.r
        preferred = self.view.walk(table.place(key))[: info.n]
        me = self.view.node_id
        loop = asyncio.get_running_loop()
        out = loop.create_future()
        tally = Tally(r, len(preferred))
        records: dict[str, Optional[DVVSet]] = {}
        pending: dict[asyncio.Future, str] = {}
        timer: list[Optional[asyncio.TimerHandle]] = [None]

        def settle() -> None:
            if timer[0] is not None:
                timer[0].cancel()
            if not tally.met:
                for fut in pending:
                    fut.cancel()
                out.set_exception(QuorumError(acks=len(tally.ok), required=r, failed=tally.failed + list(pending.values())))
                return
            merged = merge_records(records.values(), table.lww)
            try:
                out.set_result(merged if shape is None else shape(merged))
            finally:
                if not pending:  # the slower replicas' answers still count for read repair: judge once all are in
                    self._check_repair(table, key, records, merged)

        def answered(fut: asyncio.Future) -> None:
            node = pending.pop(fut)
            if not fut.cancelled() and fut.exception() is None:
                try:
                    raw = fut.result().record  # type: ignore[union-attr]
                    records[node] = decode_record(raw) if raw is not None else None
                    tally.success(node)
                except RingKVError:
                    tally.failure(node)
            else:
                tally.failure(node)
            if not out.done():
                if tally.met or tally.impossible or not pending:
                    settle()
            elif not pending and tally.met:
                self._check_repair(table, key, records)

        if me in preferred:  # first: a storage error raises before anything is sent
            records[me] = self.replica.read(table.cf, table.skey(key))
            tally.success(me)
        for node in preferred:
            if node == me:
                continue
            if self.view.is_alive(node):
                fut = self.batcher.request(node, ReplicaRead(table.wire_name, key), deadline)
                pending[fut] = node
                fut.add_done_callback(answered)
            else:
                tally.failure(node)
        if tally.met or tally.impossible or not pending:
            settle()
        else:
            timer[0] = loop.call_at(deadline, lambda: out.done() or settle())
        return out

    def _check_repair(self, table: Table, key: bytes, records: dict, merged: Optional[DVVSet] = None) -> None:
        merged = merged if merged is not None else merge_records(records.values(), table.lww)
        stale = stale_replicas(records, merged)
        if stale:
            self._spawn(self._read_repair(table, key, merged, stale))

    async def _read_repair(self, table: Table, key: bytes, merged: DVVSet, stale: list[str]) -> None:
        raw = encode_record(merged)
        repair_deadline = asyncio.get_running_loop().time() + 5.0
        for node in stale:
            self.stats["read_repairs"] += 1
            if node == self.view.node_id:
                self.apply(table, key, merged)
                continue
            try:
                await self._call(node, ReplicaPut(table.wire_name, key, raw, None), repair_deadline)
            except RingKVError:
                pass  # anti-entropy or the next read will try again

    # -- replica side ----------------------------------------------------

    def apply(self, table: Table, key: bytes, rec: DVVSet, extra: Extra = None) -> DVVSet:
        """Merge a record into the local replica (feeds keep their length in step)."""
        return self.replica.apply(table.cf, table.skey(key), rec, lww=table.lww, extra=_chain([extra, self.table_extra(table, key)]))

    def apply_encoded(self, table: Table, records: list[tuple[bytes, bytes, Optional[str]]]) -> int:
        """Merge encoded records ``(key, record, hint_for)`` in one batch, as :meth:`apply` would each; returns how many changed."""
        me = self.view.node_id
        return self.replica.apply_many(table.cf, [
            (table.skey(key), raw, _chain([self._hint_extra(h, table.wire_name, key) if h is not None and h != me else None, self.table_extra(table, key)]))
            for key, raw, h in records
        ], lww=table.lww)

    def table_extra(self, table: Table, key: bytes) -> Extra:
        """Companion writes every record of ``table`` needs (set by the feeds layer)."""
        hook = self.table_hooks.get(table.feed)
        return hook(table, key) if hook is not None else None

    def on_replica_put(self, msg: ReplicaPut) -> None:
        table = self.table(msg.keyspace)
        rec = decode_record(msg.record)
        extra = None
        if msg.hint_for is not None and msg.hint_for != self.view.node_id:
            extra = self._hint_extra(msg.hint_for, table.wire_name, msg.key)
        self.apply(table, msg.key, rec, extra)

    def on_replica_put_many(self, msg: ReplicaPutMany) -> ReplicaPutManyDone:
        """Apply a loop turn's replica writes: one batch per table; a bad record fails alone."""
        failed: list[list] = []
        groups: dict[str, list[tuple[int, bytes, bytes, Optional[str]]]] = {}
        for i, (keyspace, key, raw, hint_for) in enumerate(msg.records):
            groups.setdefault(keyspace, []).append((i, key, raw, hint_for))
        for keyspace, items in groups.items():
            try:
                self.apply_encoded(self.table(keyspace), [(key, raw, h) for _, key, raw, h in items])
            except RingKVError:
                for i, key, raw, h in items:  # find which ones: each alone
                    try:
                        self.on_replica_put(ReplicaPut(keyspace, key, raw, h))
                    except RingKVError as exc:
                        code, text, _ = to_wire(exc)
                        failed.append([i, code, text])
        return ReplicaPutManyDone(failed)

    def on_replica_read_many(self, msg: "ReplicaReadMany | KvReadMany") -> ReplicaRecords:
        """Our records of a batch of keys: one multi-get per keyspace; a bad key or keyspace fails alone."""
        keys = msg.keys
        records: list = [None] * len(keys)
        failed: list[list] = []
        groups: dict[str, list[int]] = {}
        for i, (keyspace, _) in enumerate(keys):
            groups.setdefault(keyspace, []).append(i)
        storage = self.replica.storage
        for keyspace, idx in groups.items():
            try:
                table = self.table(keyspace)
                wanted = []
                for i in idx:
                    try:
                        self._check_key(keys[i][1])
                    except RingKVError as exc:
                        failed.append([i, *to_wire(exc)[:2]])
                        continue
                    wanted.append(i)
                for i, raw in zip(wanted, storage.get_many(table.cf, [table.skey(keys[i][1]) for i in wanted])):
                    records[i] = raw
            except RingKVError as exc:
                code, text, _ = to_wire(exc)
                done = {f[0] for f in failed}
                failed.extend([i, code, text] for i in idx if i not in done)
        failed.sort()
        return ReplicaRecords(records, failed)

    def on_replica_read(self, msg: ReplicaRead) -> ReplicaRecord:
        table = self.table(msg.keyspace)
        return ReplicaRecord(self.replica.storage.get(table.cf, table.skey(msg.key)))

    # -- hinted handoff --------------------------------------------------

    async def deliver_hints(self, batch: int = 256, timeout: float = 2.0) -> int:
        """Send held copies to owners that are alive again; returns how many were acknowledged."""
        delivered = 0
        for target in list(self.hints.pending()):
            departed = self.view.departed(target)
            if target == self.view.node_id or not (departed or self.view.is_alive(target)):
                continue
            held = list(self.hints.for_target(target, batch))
            for hkey, stamp, keyspace, key in held:
                try:
                    table = self.table(keyspace)
                except RingKVError:
                    self.hints.delivered(hkey, stamp)  # keyspace dropped: nothing to deliver
                    continue
                rec = self.replica.storage.get(table.cf, table.skey(key))
                try:
                    if rec is not None:
                        if departed:
                            await self._rehome(table, key, rec, timeout)
                        else:
                            await self._request(self.view.addr(target), ReplicaPut(keyspace, key, rec, None), timeout)
                except RingKVError:
                    break  # not answering yet; try again next round
                self.hints.delivered(hkey, stamp)
                delivered += 1
                self.stats["hints_delivered"] += 1
            if len(held) < batch:  # all of the target's hints were listed: count them afresh
                self.hints.recount(target)
        return delivered

    async def _rehome(self, table: Table, key: bytes, raw: bytes, timeout: float) -> None:
        """The copy held for a member that left or was removed goes to the key's owners now.

        That member will never take it, and its ranges went to new owners
        without it. A live owner gets it (a merge: harmless if it has it); a
        down one gets a hint of its own.
        """
        me = self.view.node_id
        for owner in self.view.walk(table.place(key))[: table.info.n]:
            if owner == me:
                continue
            if self.view.is_alive(owner):
                await self._request(self.view.addr(owner), ReplicaPut(table.wire_name, key, raw, None), timeout)
            else:
                self._hold_hint(table, key, owner)

