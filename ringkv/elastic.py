"""Growing and shrinking a live cluster: join, leave, remove, replace, cleanup.

The ring that serves reads only changes when data is in place:

* a **joining** node is a pending owner — writes reach it (the coordinator
  adds pending replicas), reads do not — while it pulls its future ranges
  from current owners; then it goes ``up``;
* a **leaving** node keeps serving while it pushes its ranges to their new
  owners; then it goes ``left`` and stops;
* after a dead node is **removed**, every node pulls the ranges it gained
  from surviving replicas until each key has N copies again;
* a **replacement** takes a dead node's tokens and pulls its ranges.

Old owners drop ranges they no longer replicate only once the ring is
stable (nobody joining or leaving, no transfers running, no hints held).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Optional

from ringkv.errors import RingKVError
from ringkv.hashing import user_key
from ringkv.quorum.gc import hint_pending
from ringkv.quorum.tables import FEEDS_SUFFIX, Table
from ringkv.ring import Ring
from ringkv.ring.handoff import Move, elementary, gains, losses
from ringkv.ring.streaming import Streamer

if TYPE_CHECKING:
    from ringkv.server import NodeServer

__all__ = ["Elastic"]

log = logging.getLogger("ringkv.node")


class Elastic:
    """Ownership changes of one node."""

    def __init__(self, server: "NodeServer") -> None:
        self.s = server
        self.streamer = Streamer(
            server.storage,  # type: ignore[arg-type]
            self._apply_chunk,
            server.transport.request,  # type: ignore[union-attr]
            server.addr,
            server.config.stream,
        )
        self.state = "idle"
        self._tasks: set[asyncio.Task] = set()
        self._cleaned: Optional[tuple] = None

    def _apply_chunk(self, table: Table, entries: list) -> int:
        """Merge a streamed chunk as ``coordinator.apply`` would each record, in one batch."""
        return self.s.coordinator.apply_encoded(table, [(key, raw, None) for key, raw in entries])  # type: ignore[union-attr]

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.s._tasks.append(task)
        return task

    def tables(self) -> list[Table]:
        out = []
        for info in self.s.keyspaces():
            out.append(self.s.coordinator.table(info.name))  # type: ignore[union-attr]
            out.append(self.s.coordinator.table(info.name + FEEDS_SUFFIX))  # type: ignore[union-attr]
        return out

    def _sources(self, move: Move, exclude: tuple = ()) -> list[str]:
        return [p for p in move.peers if p not in exclude and p != self.s.node_id and self.s.is_alive(p)]

    async def _pull_all(self, old: Ring, new: Ring, exclude: tuple = ()) -> None:
        jobs = []
        for table in self.tables():
            for move in gains(self.s.node_id, old, new, table.info.n):
                if move.peers or len(old):
                    jobs.append(self.streamer.pull(table, move, lambda m=move: self._sources(m, exclude) or list(m.peers)))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    # -- join / replace ------------------------------------------------------

    async def _await_known(self, status: str, timeout: float = 15.0) -> None:
        """Wait (bounded) until every live member sees us as ``status``.

        Streaming must not start before every coordinator sends new writes to
        us as a pending owner (or to our gainers, when leaving); otherwise a
        write could slip past the stream. Cassandra waits a fixed RING_DELAY;
        asking the members directly is both faster and surer.
        """
        from ringkv.node_messages import ClusterView

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        me = self.s.node_id
        while loop.time() < deadline:
            behind = []
            for m in list(self.s.gossip.members.values()):  # type: ignore[union-attr]
                if m.node_id == me or m.status in ("left", "removed") or not self.s.is_alive(m.node_id):
                    continue
                try:
                    view = await self.s.transport.request(m.addr, ClusterView(), 1.0)  # type: ignore[union-attr]
                except RingKVError:
                    behind.append(m.node_id)
                    continue
                mine = [x for x in view.members if x[0] == me]  # type: ignore[attr-defined]
                if not mine or mine[0][3] != status or not mine[0][2]:
                    behind.append(m.node_id)
            if not behind:
                return
            await asyncio.sleep(0.1)  # gossip is spreading our new status
        log.warning("some members did not learn our %s status in time; continuing", status)

    async def join(self) -> None:
        """Pull our future ranges, then become a full owner. Retries until it succeeds."""
        self.state = "joining"
        while not [m for m in self.s._ring_members() if m != self.s.node_id]:
            await asyncio.sleep(0.1)  # a restarted joiner first relearns the ring from gossip
        await asyncio.sleep(2 * self.s.config.gossip.sync_interval)  # ...all of it, not the first member heard of
        await self._await_known("joining")
        while True:
            try:
                await self._pull_all(self.s.ring, self.s.future_ring)
                break
            except RingKVError as exc:
                log.warning("join streaming interrupted (%s); retrying", exc)
                await asyncio.sleep(1.0)  # retry back-off
        self.s.finish_join()
        self.streamer.clear()
        self.state = "idle"
        log.info("node %s joined: ranges streamed", self.s.node_id)

    # -- leave ---------------------------------------------------------------

    async def leave(self) -> None:
        """Push our ranges to their new owners, then go ``left``."""
        self.state = "leaving"
        await self._await_known("leaving")
        while True:
            try:
                jobs = []
                for table in self.tables():
                    for move in losses(self.s.node_id, self.s.ring, self.s.future_ring, table.info.n):
                        for target in move.peers:
                            jobs.append(self.streamer.push(table, move, target))
                results = await asyncio.gather(*jobs, return_exceptions=True)
                errors = [r for r in results if isinstance(r, BaseException)]
                if errors:
                    raise errors[0]
                break
            except RingKVError as exc:
                log.warning("leave streaming interrupted (%s); retrying", exc)
                await asyncio.sleep(1.0)  # retry back-off
        self.state = "left"
        self.streamer.clear()
        self.s.finish_leave()

    # -- remove --------------------------------------------------------------

    def on_removed(self, node_id: str, before: Ring) -> None:
        """A member was removed: re-replicate the ranges we gained from the survivors."""
        self.spawn(self._rereplicate(node_id, before))

    async def _rereplicate(self, node_id: str, before: Ring) -> None:
        self.state = "rereplicating"
        for _ in range(30):
            try:
                await self._pull_all(before, self.s.ring, exclude=(node_id,))
                self.streamer.clear()
                break
            except RingKVError as exc:
                log.warning("re-replication after removing %s interrupted (%s); retrying", node_id, exc)
                await asyncio.sleep(1.0)  # retry back-off
        self.state = "idle"

    # -- cleanup -------------------------------------------------------------

    def stable(self) -> bool:
        members = self.s.gossip.members.values()  # type: ignore[union-attr]
        return (
            self.state == "idle"
            and not self.streamer.busy()
            and not any(m.status in ("joining", "leaving") for m in members)
            and self.s.hints.total() == 0
        )

    async def cleanup(self) -> int:
        """Hand off, then drop, ranges we no longer replicate (ring stable only).

        Like Riak's ownership handoff, the old owner first pushes its copy of
        each range to the current owners (a merge: harmless if they have it),
        so a write that reached only old owners during a change is not lost
        when they drop the range. Returns the number of ranges dropped.
        """
        if not self.stable():
            return 0
        ring = self.s.ring
        fingerprint = (tuple(sorted(ring.to_dict().items())), tuple(t.wire_name for t in self.tables()))
        if fingerprint == self._cleaned or self.s.node_id not in ring.members:
            return 0
        me = self.s.node_id
        dropped, complete = 0, True
        for table in self.tables():
            for lo, hi, owners, _ in elementary(ring, ring, table.info.n):
                if me in owners or not self._holds(table, lo, hi):
                    continue
                try:
                    for target in owners:
                        await self.streamer.push(table, Move(lo, hi, (target,)), target)
                except RingKVError as exc:
                    log.info("handoff of a range to its owners failed (%s); will retry", exc)
                    complete = False
                    continue
                if not self.stable():  # a hint or a ring change arrived during the handoff
                    complete = False
                    break
                if not await self._drop(table, lo, hi):
                    complete = False  # some keys are held for a down owner: drop them on a later pass
                dropped += 1
        self.streamer.clear()
        if complete:
            self._cleaned = fingerprint
        if dropped:
            log.info("handed off and dropped %d ranges this node no longer replicates", dropped)
        return dropped

    def _holds(self, table: Table, lo: int, hi: int) -> bool:
        entries, _, _ = self.streamer.read_chunk(table, lo, hi, None, 1)
        return bool(entries)

    async def _drop(self, table: Table, lo: int, hi: int) -> bool:
        """Forget a range; False when keys held for a down owner (hinted) were kept."""
        storage = self.s.storage
        if not storage.has_cf(table.cf):  # type: ignore[union-attr]
            return True
        hints = self.s.hints
        repair = self.s.repair
        if repair is None and hints.total():
            return False  # a range delete cannot spare the hinted keys
        if table.feed:
            self.s.feeds.store.drop_lengths(table.info.name, lo, hi)
        if repair is None:
            storage.delete_hash_range(table.cf, lo, hi)  # type: ignore[union-attr]
            return True
        kept: list[bytes] = []

        def keep(skey: bytes) -> bool:
            # a hinted write that arrived meanwhile is the copy an owner still needs from us
            if hints.total() and hint_pending(hints, table.wire_name, user_key(skey)):
                kept.append(skey)
                return True
            return False

        await repair.drop_range(table.cf, lo, hi, keep)  # chunked, keeps the hash trees right
        return not kept

    async def cleanup_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)  # periodic housekeeping timer
            with contextlib.suppress(RingKVError):
                await self.cleanup()

    def status(self) -> dict:
        return {"state": self.state, "transfers": self.streamer.status()}

