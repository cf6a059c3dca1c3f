"""Writes whose copies the client sends to the replicas itself.

A coordinated ``kv.put`` costs the coordinator its own write plus a message
to each other replica, their answers, and the count towards W. A client that
shares the coordinator's ring offers to do that part (``kv.put`` with its
ring digest): a coordinator whose ring is the same and settled (nobody
joining or leaving) and which sees every replica alive stores the write
with its dot and answers ``kv.written`` with the record. The client then
sends that record to the other replicas, with the writes of the same loop
turn in one ``kv.write_many`` per node, and the write is done once W
replicas (the coordinator included) hold it.

Whenever that falls short (a replica refuses or does not answer, at once
or after the write was reported done) the client hands the record back to
the coordinator with ``kv.replicate``, which copies it as after a write of
its own: fallbacks, hints, and a ``QuorumError`` with its acks when W
cannot be met. A coordinator that does not accept the offer answers
``kv.done`` as for any write.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

from ringkv.client_reads import TurnBatches, deliver_each, settings_of
from ringkv.errors import QuorumError, RingKVError, Timeout, Unavailable
from ringkv.quorum.batching import MAX_BYTES
from ringkv.quorum.messages import KvReplicate, KvWriteMany, KvWritten, ReplicaPutManyDone

if TYPE_CHECKING:  # pragma: no cover
    from ringkv.client import AsyncClient

__all__ = ["DirectWrites"]

#: Copies per ``kv.write_many``, at most (and about ``MAX_BYTES`` of records).
MAX_COPIES = 256
#: Seconds a copy, or a hand-back, gets at least, even when the write itself used up the client's timeout.
MIN_BUDGET = 0.25


class _Copy:
    """One write's copies to the other replicas: done once ``need`` of them are acknowledged."""

    __slots__ = ("keyspace", "key", "record", "w", "coordinator", "need", "ok", "waiting", "out", "owner", "handed", "missed", "table")

    def __init__(self, owner: "DirectWrites", keyspace: str, key: bytes, record: bytes, w: Optional[int], coordinator: str, need: int, fut: asyncio.Future) -> None:
        self.owner = owner
        self.keyspace, self.key, self.record, self.w = keyspace, key, record, w
        self.coordinator = coordinator
        self.need = need
        self.ok = 0
        self.waiting = 0
        self.out = fut
        #: ``(n, r, w, lww)`` of the keyspace as the client knew it when it wrote (the replicas check it)
        self.table: tuple = ()
        #: the coordinator was asked to copy it (or is being asked)
        self.handed = False
        #: some replica did not take its copy
        self.missed = False

    def acked(self) -> None:
        self.waiting -= 1
        self.ok += 1
        if self.ok >= self.need and not self.out.done():
            self.out.set_result(None)

    def expire(self) -> None:
        """This write's budget for its copies is spent: what has not answered yet counts as failed."""
        if not self.out.done() and self.ok < self.need:
            self.handed = True
            self.missed = True
            self.out.set_exception(Timeout("copies not acknowledged in time"))

    def fail(self, exc: BaseException) -> None:
        self.waiting -= 1
        self.missed = True
        if not self.out.done():
            if self.ok + self.waiting < self.need:
                self.handed = True  # the writer hands it back now
                self.out.set_exception(exc if isinstance(exc, RingKVError) else Unavailable(str(exc)))
        else:
            self.owner.hand_back_later(self)  # reported done already: the coordinator hints what is missing


class DirectWrites:
    """The copies of one :class:`~ringkv.client.AsyncClient`'s writes."""

    def __init__(self, client: "AsyncClient") -> None:
        self._client = client
        self._batches = TurnBatches(client, self._message, self._deliver, self._fail, MAX_COPIES,
                                    lambda item: len(item[0].record) + len(item[0].key), MAX_BYTES)
        self._background: set[asyncio.Task] = set()
        #: ``copied``: writes the client copied to W replicas; ``handed_back``: ones it asked the coordinator to finish
        self.stats = {"copied": 0, "handed_back": 0}

    async def copy(self, keyspace: str, key: bytes, written: KvWritten, table: tuple[int, int, int, bool], digest: bytes, deadline: float,
                   *, place: Optional[bytes] = None) -> None:
        """Get ``written.record`` to W replicas, or raise as a coordinated write would.

        ``keyspace`` is the table's wire name; ``place`` what places ``key``
        on the ring when it is not the key itself (a feed entry's feed).

        N and W are the coordinator's (``written.n``, ``written.w``): the
        client's own copy of the keyspace settings may be out of date.
        """
        client = self._client
        ring = client.ring()
        _, addr_of = client.live_members()
        loop = asyncio.get_running_loop()
        copy = _Copy(self, keyspace, key, written.record, written.w, written.node, max(0, written.w - 1), loop.create_future())
        copy.table = table
        timer = None
        if ring.digest != digest:
            copy.out.set_exception(Unavailable("the client's ring changed"))
        else:
            remaining = deadline - loop.time()
            budget = max(remaining / 2, min(remaining, MIN_BUDGET), 0.001)  # keep half for a hand-back
            targets = [m for m in ring.preference_list(key if place is None else place, written.n) if m != written.node]
            copy.waiting = len(targets)
            for m in targets:
                addr = addr_of.get(m)
                if addr is None:
                    copy.fail(Unavailable(f"no address for {m}"))
                else:
                    self._batches.add(addr, digest, (copy, m), budget)
            if copy.need == 0 and not copy.out.done():
                copy.out.set_result(None)
            # a batch keeps the budget of its first copy: this one's own ends here
            timer = loop.call_later(budget, copy.expire)
        try:
            await copy.out
        except RingKVError:
            self.stats["handed_back"] += 1
            try:
                await self._hand_back(copy, max(deadline - loop.time(), MIN_BUDGET))
            except QuorumError:
                raise
            except RingKVError as exc:  # the coordinator holds the write whatever happened here: not "not delivered"
                raise Timeout(f"the write was stored but its copies could not be confirmed ({exc}); the outcome is unknown") from None
            return
        finally:
            if timer is not None:
                timer.cancel()
        self.stats["copied"] += 1
        if copy.missed:
            self.hand_back_later(copy)  # W held, but a replica refused its copy: the coordinator hints it

    async def _hand_back(self, copy: _Copy, timeout: float) -> None:
        """The coordinator copies the record as after a write of its own (QuorumError, Timeout as for any write)."""
        addr = self._client.live_members()[1].get(copy.coordinator)
        if addr is None:
            raise Timeout(f"the coordinator of this write ({copy.coordinator}) is no longer known; the outcome is unknown")
        await self._client.call(KvReplicate(copy.keyspace, copy.key, copy.record, copy.w), addr=addr, timeout=timeout)

    def hand_back_later(self, copy: _Copy) -> None:
        """A copy failed after the write was reported done: the coordinator keeps a hint for it."""
        if copy.handed:
            return
        copy.handed = True
        self.stats["handed_back"] += 1
        task = asyncio.ensure_future(self._quiet_hand_back(copy))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _quiet_hand_back(self, copy: _Copy) -> None:
        try:
            await self._hand_back(copy, self._client.timeout)
        except RingKVError:
            pass  # the replicas that acked hold it; anti-entropy brings the rest

    def _message(self, digest: bytes, items: list[tuple[_Copy, str]]) -> KvWriteMany:
        return KvWriteMany(digest, settings_of(items), [[c.keyspace, c.key, c.record] for c, _ in items])

    def _deliver(self, items: list[tuple[_Copy, str]], reply: object) -> None:
        if not isinstance(reply, ReplicaPutManyDone):
            self._fail(items, Unavailable(f"unexpected answer to kv.write_many: {type(reply).__name__}"))
            return
        deliver_each(items, reply.failed, lambda i, item: item[0].acked())

    def _fail(self, items: list[tuple[_Copy, str]], exc: RingKVError) -> None:
        for copy, _ in items:
            copy.fail(exc)
        if isinstance(exc, Unavailable):
            self._client.reads.forget(items[0][0].keyspace)

    async def aclose(self) -> None:
        """Send the copies still queued, and give hand-backs in progress the client's timeout to finish."""
        self._batches.flush()
        if self._background:
            _, late = await asyncio.wait(list(self._background), timeout=self._client.timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
