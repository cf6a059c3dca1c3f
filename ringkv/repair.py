"""Anti-entropy and tombstone GC on a node: the asyncio service.

:func:`install` (called by the node shell at start) opens the hash trees
(:mod:`ringkv.quorum.aae`), hooks them into every record write, registers
the ``aae.*`` handlers and starts two background tasks: a tree rebuilder and
the periodic pass.

A pass, for each table (a keyspace's keys, its feed entries) and each peer
sharing replica ranges with this node:

1. compares the trees top-down, restricted to the shared ranges — levels of
   32 hashes, descending only into differing nodes; a segment that straddles
   a range edge is compared on the shared part only;
2. pages through the key digests of each differing segment (both sides) and
   repairs each differing key by merging: read the peer's record, apply it
   here, send the merged record back — both sides end with the merge;
3. then proposes the purge of tombstones held for the grace period by every
   replica (:mod:`ringkv.quorum.gc`).

Periodic passes go to peers with a greater node id (each pair once per
period); an on-demand pass (``aae.repair``, :func:`run_repair`) goes to all.
Scans are chunked and repairs bounded in number in flight, so a pass yields
to client requests all along.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from ringkv.codec import decode_record
from ringkv.errors import BadRequest, RingKVError, Unavailable, WrongType
from ringkv.gossip import LEFT, REMOVED, UP
from ringkv.quorum.aae import DIGEST_LEN, HashTree, Trees, record_digest
from ringkv.quorum.aae_ranges import Pieces, clip, covering_indexes, intersect, intersects, node_range, normalize
from ringkv.quorum.aae_messages import (
    MAX_INDEXES,
    MAX_KEYS,
    AaeHashes,
    AaeHashList,
    AaeKeyList,
    AaeKeys,
    AaePurge,
    AaePurged,
    AaeRepair,
    AaeRepairStats,
    AaeTombStates,
    AaeTombstones,
    pieces_from_wire,
    pieces_to_wire,
)
from ringkv.quorum.gc import Candidate, TombState, decide, due, hint_pending, local_state, purge
from ringkv.quorum.messages import ReplicaPut, ReplicaRead
from ringkv.quorum.tables import FEEDS_SUFFIX, Table

__all__ = ["RepairConfig", "RepairService", "install", "run_repair"]

log = logging.getLogger("ringkv.repair")

#: Differing segments whose keys are compared at once, per exchange.
_SEGMENTS_IN_FLIGHT = 4

#: Counters every pass reports (besides ``seconds``).
STAT_KEYS = (
    "ranges_compared",
    "segments_differing",
    "keys_repaired",
    "tombstones_purged",
    "exchanges",
    "keys_compared",
    "replica_purges",
    "peers_down",
    "gc_blocked",
    "foreign_absorbed",
    "errors",
)


@dataclass(frozen=True)
class RepairConfig:
    """Anti-entropy and tombstone GC of one node."""

    #: Seconds between periodic passes (each jittered by ``jitter``); 0 disables them.
    interval: float = 30.0
    #: Relative jitter of the interval (0.2: 80% to 120% of it), so nodes do not align.
    jitter: float = 0.2
    #: Segments per hash tree, a power of two. More segments make diffs finer
    #: and ranges straddle fewer segments (256 KiB of memory per 16k segments
    #: per table), worth raising with many vnodes or keys.
    segments: int = 1024
    #: Seconds every replica must have held a tombstone, unchanged, before it
    #: may be purged. Longer than any outage a hint or a write may wait out.
    tombstone_grace: float = 3600.0
    #: Purge tombstones at all (False keeps them forever).
    gc: bool = True
    #: Records read per storage chunk before yielding to the event loop.
    scan_chunk: int = 256
    #: Keys per ``aae.keys`` page.
    page_keys: int = 1000
    #: Key repairs in flight per exchange.
    max_inflight: int = 8
    #: Cap on keys repaired per second by this node (0: none). Scans and
    #: comparisons always yield to client requests; this also bounds the
    #: write load a big repair (a wiped replica) puts on the cluster.
    keys_per_second: float = 0.0
    #: Seconds to wait for one peer request.
    request_timeout: float = 10.0
    #: Seconds between rebuilds of every hash tree from the records stored
    #: (jittered like ``interval``; 0: never). The write path keeps the trees
    #: current; a rebuild also finds records lost behind its back (a damaged
    #: or partly restored data directory), which anti-entropy and reads that
    #: trust equal trees would otherwise never see.
    tree_rebuild: float = 7 * 24 * 3600.0
    #: Tombstones examined per GC batch.
    gc_batch: int = 256

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "gc":
                if type(v) is not bool:
                    raise WrongType("repair option gc must be a bool")
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise WrongType(f"repair option {f.name} must be a number, not {type(v).__name__}")
        s = self.segments
        if type(s) is not int or s < 2 or s > 1 << 24 or s & (s - 1):
            raise BadRequest("segments must be a power of two between 2 and 2**24")
        if self.interval < 0 or self.tombstone_grace < 0 or self.keys_per_second < 0 or self.tree_rebuild < 0 or not 0 <= self.jitter < 1:
            raise BadRequest("interval, tombstone_grace, keys_per_second and tree_rebuild must be >= 0, jitter in [0, 1)")
        for name in ("scan_chunk", "page_keys", "max_inflight", "gc_batch"):
            v = getattr(self, name)
            if type(v) is not int or not 1 <= v <= MAX_KEYS:
                raise BadRequest(f"{name} must be an int in [1, {MAX_KEYS}]")
        if self.request_timeout <= 0:
            raise BadRequest("request_timeout must be > 0")

    @property
    def bits(self) -> int:
        return self.segments.bit_length() - 1


def _wall_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """Wall-clock seconds for tombstone ages: the loop's clock when it is simulated."""
    from ringkv.simloop import VirtualLoop

    return loop.time if isinstance(loop, VirtualLoop) else time.time


class RepairService:
    """Anti-entropy and tombstone GC of one :class:`~ringkv.server.NodeServer`."""

    def __init__(self, server: Any, config: Optional[RepairConfig] = None) -> None:
        self.s = server
        self.config = config or RepairConfig()
        self.clock = _wall_clock(asyncio.get_running_loop())
        self._wake = asyncio.Event()
        self.trees = Trees(server.storage, self.config.bits, clock=self.clock, wake=self._wake.set, scan_chunk=self.config.scan_chunk)
        self._lock = asyncio.Lock()
        self._rng = random.Random(server.config.seed)
        self._pieces_memo: tuple[Any, dict] = (None, {})
        self._budget = 0.0  # token bucket of keys_per_second
        self._budget_at = 0.0
        #: Counters summed over every pass.
        self.totals: Counter = Counter()
        #: Stats of the latest pass.
        self.last: Optional[dict] = None
        self.passes = 0

    def start(self) -> None:
        s = self.s
        self.trees.open()
        s.coordinator.replica.observers.append(self.trees.observe)
        s.coordinator.replica.write_failed.append(self.trees.resync)
        s._handlers.update(
            {
                AaeHashes: self._on_hashes,
                AaeKeys: self._on_keys,
                AaeTombstones: self._on_tombstones,
                AaePurge: self._on_purge,
                AaeRepair: self._on_repair,
            }
        )
        s._tasks.append(asyncio.ensure_future(self._rebuilder()))
        s._tasks.append(asyncio.ensure_future(self._every(self.config.interval, self._periodic_pass)))
        s._tasks.append(asyncio.ensure_future(self._every(self.config.tree_rebuild, self._expire_trees)))

    # -- deletions by other components ------------------------------------------

    def forget_range(self, cf: str, lo: int, hi: int) -> int:
        """Delete the records of ``cf`` with hash in ``[lo, hi)``, keeping the tree right (synchronous)."""
        return self.trees.forget_range(cf, lo, hi)

    async def drop_range(self, cf: str, lo: int, hi: int, keep: Optional[Callable[[bytes], bool]] = None) -> int:
        """:meth:`forget_range` in chunks, yielding to client requests between them; ``keep(skey)`` spares a key."""
        return await self.trees.drop_range(cf, lo, hi, keep)

    # -- background tasks --------------------------------------------------------

    async def _rebuilder(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.trees.rebuild_stale()

    async def _every(self, period: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` every ``period`` seconds (jittered); never when ``period`` is 0."""
        if period <= 0:
            return
        jitter = self.config.jitter
        while True:
            await asyncio.sleep(period * self._rng.uniform(1 - jitter, 1 + jitter))  # periodic timer
            await action()

    async def _expire_trees(self) -> None:
        self.trees.expire()  # the rebuilder wakes and rebuilds them from the records

    async def _periodic_pass(self) -> None:
        try:
            await self.run_pass(all_peers=False)
        except RingKVError as exc:
            log.info("anti-entropy pass failed: %s", exc)
        except Exception:  # a bug must not end anti-entropy for good
            log.exception("anti-entropy pass failed")

    # -- passes ----------------------------------------------------------------

    def _tables(self, keyspace: Optional[str]) -> list[Table]:
        infos = [self.s.keyspace(keyspace)] if keyspace is not None else self.s.keyspaces()
        c = self.s.coordinator
        return [t for info in infos for t in (c.table(info.name), c.table(info.name + FEEDS_SUFFIX))]

    async def run_pass(self, keyspace: Optional[str] = None, *, all_peers: bool = True, gc: Optional[bool] = None) -> dict:
        """One anti-entropy pass (then GC); returns its stats.

        ``all_peers=False`` (periodic passes) compares only with peers whose
        node id is greater than ours: every pair once per period.
        """
        tables = self._tables(keyspace)
        async with self._lock:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            st: Counter = Counter(dict.fromkeys(STAT_KEYS, 0))
            await self.trees.rebuild_stale()
            for table in tables:
                await self._table_pass(table, st, all_peers)
            if self.config.gc if gc is None else gc:
                for table in tables:
                    try:
                        await self._gc_table(table, st)
                    except RingKVError as exc:
                        st["errors"] += 1
                        log.info("tombstone GC of %s: %s", table.wire_name, exc)
            stats: dict = {k: st[k] for k in STAT_KEYS}
            stats["seconds"] = round(loop.time() - t0, 6)
            self.totals.update({k: st[k] for k in STAT_KEYS})
            self.passes += 1
            self.last = stats
            if stats["keys_repaired"] or stats["tombstones_purged"]:
                log.info("anti-entropy: %d keys repaired, %d tombstones purged in %.2fs", stats["keys_repaired"], stats["tombstones_purged"], stats["seconds"])
            return stats

    def _pieces(self, node: str, n: int) -> Pieces:
        """``node``'s replica ranges for ``n`` copies, as sorted ``[lo, hi)`` pieces (memoised per ring)."""
        ring = self.s.ring
        memo_ring, memo = self._pieces_memo
        if memo_ring is not ring:
            memo = {}
            self._pieces_memo = (ring, memo)
        got = memo.get((node, n))
        if got is None:
            got = memo[(node, n)] = normalize([p for r in ring.replica_ranges(node, n) for p in r.pieces()])
        return got

    async def _table_pass(self, table: Table, st: Counter, all_peers: bool) -> None:
        s = self.s
        tree = self.trees.get(table.cf)
        ring, me = s.ring, s.node_id
        if tree is None or me not in ring.members:
            return
        mine = self._pieces(me, table.info.n)
        for peer in ring.members:
            if peer == me or (not all_peers and peer < me):
                continue
            shared = intersect(mine, self._pieces(peer, table.info.n))
            if not shared:
                continue
            if not s.is_alive(peer):
                st["peers_down"] += 1
                continue
            try:
                await self._exchange(table, tree, s.addr(peer), shared, st)
            except Unavailable as exc:
                st["errors"] += 1
                log.debug("anti-entropy with %s on %s: %s", peer, table.wire_name, exc)
            except RingKVError as exc:
                st["errors"] += 1
                log.info("anti-entropy with %s on %s: %s", peer, table.wire_name, exc)

    async def _request(self, addr: str, msg: Any) -> Any:
        return await self.s.transport.request(addr, msg, self.config.request_timeout)

    async def _remote_hashes(self, addr: str, table: Table, tree: HashTree, level: int, indexes: list[int], pieces: Pieces) -> list[bytes]:
        out: list[bytes] = []
        for i in range(0, len(indexes), MAX_INDEXES):
            reply = await self._request(addr, AaeHashes(table.wire_name, tree.bits, level, indexes[i : i + MAX_INDEXES], pieces_to_wire(pieces)))
            if not isinstance(reply, AaeHashList) or len(reply.hashes) != len(indexes[i : i + MAX_INDEXES]):
                raise Unavailable(f"bad aae.hashes reply from {addr}")
            out.extend(reply.hashes)
        return out

    async def _exchange(self, table: Table, tree: HashTree, addr: str, shared: Pieces, st: Counter) -> None:
        """Compare and repair ``table`` with the peer at ``addr`` over the ``shared`` ranges."""
        st["ranges_compared"] += len(shared)
        st["exchanges"] += 1
        bits, lbs = tree.bits, tree.level_bits
        leaf_level = len(lbs) - 1
        candidates = covering_indexes(shared, lbs[0])
        for level in range(len(lbs)):
            if not candidates:
                return
            remote = await self._remote_hashes(addr, table, tree, level, candidates, [])
            if self.trees.trees.get(table.cf) is not tree or not tree.ready:
                return  # our tree is being rebuilt: the next pass compares
            local = tree.hashes(level, candidates)
            differing = [i for i, a, b in zip(candidates, local, remote) if a.to_bytes(DIGEST_LEN, "big") != b]
            if level < leaf_level:
                nb = lbs[level + 1]
                candidates = [c for i in differing for c in tree.children(level, i) if intersects(shared, *node_range(nb, c))]
            else:
                candidates = differing
        if not candidates:
            return
        # segments straddling a range edge: compare the shared part only
        straddling = [seg for seg in candidates if clip(shared, *node_range(bits, seg)) != [node_range(bits, seg)]]
        if straddling:
            same: set[int] = set()
            step = 4096
            for i in range(0, len(straddling), step):
                part = straddling[i : i + step]
                sub = [p for seg in part for p in clip(shared, *node_range(bits, seg))]
                remote = await self._remote_hashes(addr, table, tree, leaf_level, part, sub)
                for seg, r in zip(part, remote):
                    mine = await self.trees.restricted(tree, seg, clip(shared, *node_range(bits, seg)))
                    if mine.to_bytes(DIGEST_LEN, "big") == r:
                        same.add(seg)
            candidates = [seg for seg in candidates if seg not in same]
        st["segments_differing"] += len(candidates)
        sem = asyncio.Semaphore(_SEGMENTS_IN_FLIGHT)

        async def sync_segment(seg: int) -> None:
            async with sem:
                for lo, hi in clip(shared, *node_range(bits, seg)):
                    await self._sync_keys(table, addr, lo, hi, st)

        results = await asyncio.gather(*(sync_segment(seg) for seg in candidates), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    async def _sync_keys(self, table: Table, addr: str, lo: int, hi: int, st: Counter) -> None:
        """Page through both sides' key digests in ``[lo, hi)`` and repair every difference."""
        cf = table.cf
        lo_b = lo.to_bytes(8, "big")
        after: Optional[bytes] = None
        while True:
            reply = await self._request(addr, AaeKeys(table.wire_name, lo, hi - 1, after, self.config.page_keys))
            if not isinstance(reply, AaeKeyList):
                raise Unavailable(f"bad aae.keys reply from {addr}")
            remote: dict[bytes, bytes] = {}
            for skey, d in reply.keys:
                h = int.from_bytes(skey[:8], "big")
                if lo <= h < hi and skey >= lo_b and (after is None or skey > after):
                    remote[skey] = d
            more = bool(reply.more and reply.keys)
            upper = reply.keys[-1][0] if more else None
            diffs: list[tuple[bytes, bool]] = []
            async for items in self.trees.chunks(cf, lo, hi, after):
                stop = False
                for skey, raw in items:
                    if upper is not None and skey > upper:
                        stop = True
                        break
                    st["keys_compared"] += 1
                    r = remote.pop(skey, None)
                    if r != record_digest(skey, raw)[0].to_bytes(DIGEST_LEN, "big"):
                        diffs.append((skey, r is None))
                if len(diffs) >= 256:
                    await self._repair_keys(table, addr, diffs, st)
                    diffs = []
                if stop:
                    break
            diffs.extend((skey, False) for skey in remote)  # only the peer has these
            st["keys_compared"] += len(remote)
            await self._repair_keys(table, addr, diffs, st)
            if not more:
                return
            after = upper

    async def _repair_keys(self, table: Table, addr: str, diffs: list[tuple[bytes, bool]], st: Counter) -> None:
        if not diffs:
            return
        sem = asyncio.Semaphore(self.config.max_inflight)

        async def one(skey: bytes, remote_absent: bool) -> None:
            async with sem:
                try:
                    if await self._repair_key(table, addr, skey, remote_absent):
                        st["keys_repaired"] += 1
                except RingKVError as exc:
                    st["errors"] += 1
                    log.debug("repair of a key of %s failed: %s", table.wire_name, exc)

        await asyncio.gather(*(one(skey, absent) for skey, absent in diffs))

    async def _pace(self) -> None:
        rate = self.config.keys_per_second
        if not rate:
            return
        now = asyncio.get_running_loop().time()
        self._budget = min(rate, self._budget + (now - self._budget_at) * rate) - 1
        self._budget_at = now
        if self._budget < 0:
            await asyncio.sleep(-self._budget / rate)  # rate limit, by design

    async def _repair_key(self, table: Table, addr: str, skey: bytes, remote_absent: bool) -> bool:
        """Merge both sides' records of one key onto both; True if either side changed."""
        await self._pace()
        key = skey[8:]
        if table.skey(key) != skey:
            raise BadRequest("a storage key that does not match its key's placement")
        storage = self.s.storage
        remote_raw: Optional[bytes] = None
        if not remote_absent:
            reply = await self._request(addr, ReplicaRead(table.wire_name, key))
            remote_raw = reply.record
        changed = False
        if remote_raw is not None:
            before = storage.get(table.cf, skey)
            self.s.coordinator.apply(table, key, decode_record(remote_raw))
            merged = storage.get(table.cf, skey)
            changed = merged != before
        else:
            merged = storage.get(table.cf, skey)
        if merged is None:
            return changed
        if remote_raw is None or record_digest(skey, merged)[0] != record_digest(skey, remote_raw)[0]:
            await self._request(addr, ReplicaPut(table.wire_name, key, merged, None))
            changed = True
        return changed

    # -- tombstone GC ------------------------------------------------------------

    def _gc_members(self) -> Optional[list]:
        """Every other member that must answer a purge proposal; None when GC must wait."""
        s = self.s
        elastic = getattr(s, "elastic", None)
        if elastic is not None:
            busy = getattr(getattr(elastic, "streamer", None), "busy", None)
            if getattr(elastic, "state", "idle") != "idle" or (busy is not None and busy()):
                return None
        out = []
        for m in s.gossip.members.values():
            if m.status in (LEFT, REMOVED):
                continue
            if m.status != UP or not s.is_alive(m.node_id):
                return None  # someone joining, leaving or down: ranges or copies may be in motion
            if m.node_id != s.node_id:
                out.append(m)
        return out

    async def _gc_table(self, table: Table, st: Counter) -> None:
        s = self.s
        if self.trees.get(table.cf) is None:
            return
        if self._gc_members() is None:
            st["gc_blocked"] += 1
            return
        me, n = s.node_id, table.info.n
        grace = self.config.tombstone_grace
        after: Optional[bytes] = None
        while True:
            entries, cursor = due(self.trees, table.cf, self.clock(), grace, after, self.config.gc_batch)
            ring = s.ring
            cands = []
            for skey, digest in entries:
                key = skey[8:]
                try:
                    if table.skey(key) != skey:
                        continue
                    pref = tuple(ring.preference_list(table.place(key), n))
                except RingKVError:
                    continue
                if pref and pref[0] == me and not hint_pending(s.hints, table.wire_name, key):
                    cands.append(Candidate(key, skey, digest, pref))
            if cands:
                st["tombstones_purged"] += await self._gc_batch(table, cands, st)
            if cursor is None:
                return
            after = cursor
            await asyncio.sleep(0)  # chunked: never block the loop

    async def _gc_batch(self, table: Table, cands: list[Candidate], st: Counter) -> int:
        s = self.s
        members = self._gc_members()
        if members is None:
            st["gc_blocked"] += 1
            return 0
        keys = [c.key for c in cands]

        async def ask(m) -> tuple[str, list[TombState]]:
            reply = await self._request(m.addr, AaeTombstones(table.wire_name, keys))
            if not isinstance(reply, AaeTombStates) or len(reply.states) != len(keys):
                raise Unavailable(f"bad aae.tombstones reply from {m.node_id}")
            return m.node_id, [TombState(*x) for x in reply.states]

        answers = await asyncio.gather(*(ask(m) for m in members), return_exceptions=True)
        if any(isinstance(a, BaseException) for a in answers):
            st["gc_blocked"] += 1  # a member that does not answer may hold a hint
            return 0
        verdict = decide(cands, dict(answers), s.node_id)  # type: ignore[arg-type]
        for c, member in verdict.absorb:
            try:
                await self._absorb(table, c.key, s.addr(member))
                st["foreign_absorbed"] += 1
            except RingKVError as exc:
                st["errors"] += 1
                log.debug("absorbing a copy of a tombstoned key from %s: %s", member, exc)
        now, grace = self.clock(), self.config.tombstone_grace
        ok = []
        for c, targets in verdict.purge:
            mine = local_state(self.trees, s.hints, table, c.key, now, grace)
            if mine.digest == c.digest and mine.eligible and not mine.hinted:
                ok.append((c, targets))
        if not ok:
            return 0
        per_member: dict[str, list] = defaultdict(list)
        for c, targets in ok:
            for m in targets:
                per_member[m].append([c.key, c.digest])
        # the others first: if we stop half-way, we still hold the tombstone and retry
        results = await asyncio.gather(
            *(self._request(s.addr(m), AaePurge(table.wire_name, ks)) for m, ks in per_member.items()),
            return_exceptions=True,
        )
        for res in results:
            if isinstance(res, AaePurged):
                st["replica_purges"] += res.purged
            elif isinstance(res, BaseException):
                st["errors"] += 1
        now = self.clock()
        return sum(purge(self.trees, s.hints, table, c.key, c.digest, now, grace) for c, _ in ok)

    async def _absorb(self, table: Table, key: bytes, addr: str) -> None:
        """Merge a non-replica's copy of ``key`` into ours, and ours back into it."""
        reply = await self._request(addr, ReplicaRead(table.wire_name, key))
        if reply.record is None:
            return
        self.s.coordinator.apply(table, key, decode_record(reply.record))
        merged = self.s.storage.get(table.cf, table.skey(key))
        if merged is not None and merged != reply.record:
            await self._request(addr, ReplicaPut(table.wire_name, key, merged, None))

    # -- handlers ----------------------------------------------------------------

    def _table(self, name: str) -> Table:
        table = self.s.coordinator.table(name)
        self.s.storage.cf(table.cf)  # BadRequest if this node has no such column family
        return table

    def _ready_tree(self, table: Table, bits: int) -> HashTree:
        if bits != self.trees.bits:
            raise BadRequest(f"hash trees differ in shape: {2 ** bits} segments asked, this node has {2 ** self.trees.bits}")
        tree = self.trees.get(table.cf)
        if tree is None:
            raise Unavailable(f"the hash tree of {table.wire_name} is being rebuilt")
        return tree

    async def _on_hashes(self, msg: AaeHashes) -> AaeHashList:
        table = self._table(msg.table)
        tree = self._ready_tree(table, msg.bits)
        if msg.level >= len(tree.level_bits):
            raise BadRequest(f"the tree has {len(tree.level_bits)} levels")
        lb = tree.level_bits[msg.level]
        if any(i >= 1 << lb for i in msg.indexes):
            raise BadRequest(f"level {msg.level} has {1 << lb} nodes")
        if not msg.pieces:
            hashes = tree.hashes(msg.level, msg.indexes)
        else:
            if msg.level != len(tree.level_bits) - 1:
                raise BadRequest("restricted hashes exist at the leaf level only")
            pieces = pieces_from_wire(msg.pieces)
            hashes = []
            for seg in msg.indexes:
                hashes.append(await self.trees.restricted(tree, seg, clip(pieces, *node_range(tree.bits, seg))))
        return AaeHashList([h.to_bytes(DIGEST_LEN, "big") for h in hashes])

    async def _on_keys(self, msg: AaeKeys) -> AaeKeyList:
        table = self._table(msg.table)
        items, more = self.trees.key_digests(table.cf, msg.lo, msg.last + 1, msg.after, min(msg.limit, self.config.page_keys))
        return AaeKeyList([[k, d.to_bytes(DIGEST_LEN, "big")] for k, d in items], more)

    async def _on_tombstones(self, msg: AaeTombstones) -> AaeTombStates:
        table = self._table(msg.table)
        now, grace = self.clock(), self.config.tombstone_grace
        return AaeTombStates([local_state(self.trees, self.s.hints, table, k, now, grace).to_wire() for k in msg.keys])

    async def _on_purge(self, msg: AaePurge) -> AaePurged:
        table = self._table(msg.table)
        if not self.config.gc or self.trees.get(table.cf) is None:
            return AaePurged(0)
        now, grace = self.clock(), self.config.tombstone_grace
        return AaePurged(sum(purge(self.trees, self.s.hints, table, key, digest, now, grace) for key, digest in msg.keys))

    async def _on_repair(self, msg: AaeRepair) -> AaeRepairStats:
        return AaeRepairStats(await self.run_pass(msg.keyspace, all_peers=True))

    def status(self) -> dict:
        return {
            "passes": self.passes,
            "last": self.last,
            "totals": dict(self.totals),
            "trees": {cf: ("ready" if t.ready else "rebuilding") for cf, t in sorted(self.trees.trees.items())},
        }


def install(server: Any) -> RepairService:
    """Open the trees, hook writes, register handlers and start the tasks on ``server``."""
    config = getattr(server.config, "repair", None) or RepairConfig()
    service = RepairService(server, config)
    service.start()
    return service


async def run_repair(client_or_transport: Any, addr: str, keyspace: Optional[str] = None, timeout: float = 600.0) -> dict:
    """Ask the node at ``addr`` to run one anti-entropy pass now; returns its stats.

    ``client_or_transport``: an :class:`~ringkv.client.AsyncClient`, a
    blocking :class:`~ringkv.client.Client` (awaited from any loop), or a
    transport with ``request(addr, msg, timeout)``. The stats hold
    ``ranges_compared``, ``segments_differing``, ``keys_repaired``,
    ``tombstones_purged``, ``seconds`` and a few more counters.
    """
    if keyspace is not None and not isinstance(keyspace, str):
        raise WrongType(f"keyspace must be a str, not {type(keyspace).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise BadRequest("timeout must be a positive number of seconds")
    target = client_or_transport
    core, runner = getattr(target, "_core", None), getattr(target, "_runner", None)
    if core is not None and runner is not None:  # the blocking Client: run on its own loop
        return await runner.arun(run_repair(core, addr, keyspace, timeout))
    msg = AaeRepair(keyspace)
    if hasattr(target, "call"):
        reply = await target.call(msg, addr=addr, timeout=timeout)
    else:
        reply = await target.request(addr, msg, timeout)
    if not isinstance(reply, AaeRepairStats):
        raise Unavailable(f"unexpected reply {type(reply).__name__} to aae.repair")
    return dict(reply.stats)
