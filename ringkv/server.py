"""The node shell: storage, transport, gossip and quorum wired on one event loop.

Everything here is plumbing. Protocol decisions live in the sans-IO cores
(:class:`~ringkv.gossip.GossipNode`, :mod:`ringkv.quorum.plan`); this object
feeds them time and messages and runs the effects they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from typing import Optional

import msgpack

from ringkv.config import StoreOptions
from ringkv.errors import BadRequest, NotFound, RingKVError, TooLarge, Unavailable, WrongType, to_wire
from ringkv.gossip import (
    DOWN,
    GOSSIP_MESSAGES,
    JOINING,
    LEAVING,
    LEFT,
    UP,
    GossipConfig,
    GossipNode,
    LivenessChanged,
    MemberChanged,
    MemberPurged,
    MetadataChanged,
    Send,
)
from ringkv.feeds.ids import EntryIds
from ringkv.feeds.messages import (
    FeedAppend,
    FeedGet,
    FeedLength,
    FeedList,
    FeedRemove,
    FeedReplicaLength,
    FeedReplicaList,
    FeedReplicaScan,
    FeedScan,
)
from ringkv.feeds.service import FeedService
from ringkv.feeds.store import FeedStore
from ringkv.identity import mark_clean_shutdown, open_identity, persistent_clock
from ringkv.keyspaces import KeyspaceInfo
from ringkv.node_messages import (
    ClusterView,
    ClusterViewReply,
    Leave,
    NodeStats,
    NodeStatsReply,
    NodeStatus,
    NodeStatusReply,
    RemoveMember,
)
from ringkv.quorum.coordinator import Coordinator
from ringkv.quorum.hints import HintStore
from ringkv.quorum.messages import (
    KeyspaceCreate,
    KeyspaceDrop,
    KeyspaceList,
    KvGet,
    KvPut,
    KvReadMany,
    KvReplicate,
    KvScan,
    KvWriteMany,
    LocalGet,
    ReplicaPut,
    ReplicaPutMany,
    ReplicaPutManyDone,
    ReplicaRead,
    ReplicaReadMany,
    ReplicaScan,
)
from ringkv.quorum.replica import LocalReplica
from ringkv.quorum.scan import Scanner
from ringkv.quorum.tables import FEEDS_SUFFIX
from ringkv.repair import RepairConfig, install as install_repair
from ringkv.catalog import Catalog
from ringkv.elastic import Elastic
from ringkv.status import member_liveness, local_stats, node_status
from ringkv.ring.messages import StreamPull, StreamPush
from ringkv.ring.streaming import StreamConfig
from ringkv.ring import Ring, allocate_tokens
from ringkv.storage import Storage
from ringkv.dispatch import FastHandler
from ringkv.transport import Transport, current_deadline
from ringkv.wire import Message

__all__ = ["NodeConfig", "NodeServer"]

log = logging.getLogger("ringkv.node")

_RING_STATUSES = (UP, LEAVING)
_TOKENS = b"tokens"
_INCARNATION = b"incarnation"
_PHASE = b"phase"  # "joining" / "leaving" until that change completes (resumed after a crash)
#: Most of a request's budget (seconds) kept back for sending its answer.
_REPLY_MARGIN = 0.25


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to run; defaults suit a laptop or a LAN."""

    data_dir: str
    #: ZeroMQ endpoint to listen on; port 0 picks a free port.
    listen: str = "tcp://127.0.0.1:7100"
    #: Addresses of existing members to join through.
    seeds: tuple[str, ...] = ()
    #: Fixed node id; default: made once and kept in the data directory.
    node_id: Optional[str] = None
    #: Ring tokens per member (chosen once, kept in the data directory).
    vnodes: int = 128
    store: StoreOptions = field(default_factory=StoreOptions)
    gossip: GossipConfig = field(default_factory=GossipConfig)
    #: Seconds a new node waits to learn the ring from its seeds before picking tokens.
    join_wait: float = 10.0
    #: Seconds between hinted-handoff delivery rounds.
    hint_interval: float = 1.0
    #: Default deadline for a request that carries none, in seconds.
    request_timeout: float = 5.0
    #: Largest frame accepted from the network, in bytes.
    max_message_size: int = 64 * 1024 * 1024
    #: Streaming of ranges between owners (throttle, chunk size, transfer limit).
    stream: StreamConfig = field(default_factory=StreamConfig)
    #: Node id of a dead member whose tokens (and data) this new node takes over.
    replace: Optional[str] = None
    #: Seconds between checks for ranges this node no longer replicates.
    cleanup_interval: float = 5.0
    #: Anti-entropy and tombstone GC (pass interval, tombstone grace period, throttles).
    repair: RepairConfig = field(default_factory=RepairConfig)
    #: Seed for the node's random choices (gossip peers, tokens); None: fresh.
    #: Simulations set it so a run replays exactly.
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        if type(self.vnodes) is not int or not 1 <= self.vnodes <= 4096:
            raise BadRequest("vnodes must be an int between 1 and 4096")
        if not isinstance(self.listen, str) or "://" not in self.listen:
            raise BadRequest(f"listen must be a ZeroMQ endpoint like tcp://127.0.0.1:7100, not {self.listen!r:.80}")
        if isinstance(self.seeds, str):
            raise WrongType("seeds must be a list of endpoints, not one string")
        object.__setattr__(self, "seeds", tuple(self.seeds))
        for seed in self.seeds:
            if not isinstance(seed, str) or "://" not in seed:
                raise BadRequest(f"a seed must be a ZeroMQ endpoint like tcp://10.0.0.1:7100, not {seed!r:.80}")
        if self.node_id is not None and (not isinstance(self.node_id, str) or not self.node_id):
            raise WrongType(f"node_id must be a non-empty str, not {self.node_id!r:.80}")
        for name in ("join_wait", "hint_interval", "request_timeout", "cleanup_interval"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not 0 < value < 1e7:
                raise BadRequest(f"{name} must be a positive number of seconds, not {value!r:.80}")
        if type(self.max_message_size) is not int or self.max_message_size < 64 * 1024:
            raise BadRequest("max_message_size must be an int of at least 65536 bytes")


class NodeServer:
    """One running ringkv node (use through :class:`ringkv.Node`)."""

    def __init__(self, config: NodeConfig, transport_factory=None) -> None:
        self.config = config
        #: ``(listen, handler) -> transport``; the simulator passes its own.
        self._transport_factory = transport_factory
        self.storage: Optional[Storage] = None
        self.transport: Optional[Transport] = None
        self.gossip: Optional[GossipNode] = None
        self.coordinator: Optional[Coordinator] = None
        self.ring = Ring({})
        #: The ring once pending joins/leaves complete: writes also go to its new owners.
        self.future_ring = Ring({})
        self.node_id = ""
        self.address = ""
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._handlers = {
            KvGet: self._on_get,
            KvPut: self._on_put,
            ReplicaPut: self._on_replica_put,
            ReplicaPutMany: self._immediate(lambda m: self.coordinator.on_replica_put_many(m)),
            ReplicaReadMany: self._immediate(lambda m: self.coordinator.on_replica_read_many(m)),
            KvReadMany: self._immediate(lambda m: self._on_read_many(m)),
            KvWriteMany: self._immediate(lambda m: self._on_write_many(m)),
            KvReplicate: self._deadlined(lambda m, d: self.coordinator.replicate_future(m, d)),
            ReplicaRead: self._on_replica_read,
            LocalGet: self._on_local_get,
            KvScan: self._deadlined(lambda m, d: self.scanner.scan(m, d)),
            ReplicaScan: self._immediate(lambda m: self.scanner.replica_scan(m)),
            KeyspaceCreate: self._deadlined(lambda m, d: self.catalog.create(m, d)),
            KeyspaceDrop: self._deadlined(lambda m, d: self.catalog.drop(m, d)),
            KeyspaceList: self._immediate(lambda m: self.catalog.listing()),
            ClusterView: self._on_cluster_view,
            NodeStatus: self._on_status,
            NodeStats: self._on_stats,
            RemoveMember: self._on_remove,
            Leave: self._on_leave,
            FeedAppend: self._deadlined(lambda m, d: self.feeds.append(m, d)),
            FeedScan: self._deadlined(lambda m, d: self.feeds.scan(m, d)),
            FeedGet: self._deadlined(lambda m, d: self.feeds.get(m, d)),
            FeedRemove: self._deadlined(lambda m, d: self.feeds.remove(m, d)),
            FeedLength: self._deadlined(lambda m, d: self.feeds.length(m, d)),
            FeedList: self._deadlined(lambda m, d: self.feeds.feeds(m, d)),
            FeedReplicaScan: self._immediate(lambda m: self.feeds.replica_scan(m)),
            FeedReplicaLength: self._immediate(lambda m: self.feeds.replica_length(m)),
            FeedReplicaList: self._immediate(lambda m: self.feeds.replica_list(m)),
            StreamPull: self._immediate(lambda m: self.elastic.streamer.serve_pull(self.coordinator.table(m.table), m)),
            StreamPush: self._immediate(lambda m: self._accept_push(m)),
        }

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self.storage = Storage(cfg.data_dir, cfg.store)
        try:
            await self._start()
        except BaseException:
            await self.stop(clean=False)
            raise

    async def _start(self) -> None:
        cfg, storage = self.config, self.storage
        assert storage is not None
        ident = open_identity(storage, cfg.node_id)
        self.node_id = ident.node_id
        incarnation = int(storage.meta_get(_INCARNATION) or b"0") + 1
        storage.meta_put(_INCARNATION, str(incarnation).encode())
        raw_tokens = storage.meta_get(_TOKENS)
        tokens = list(msgpack.unpackb(raw_tokens)) if raw_tokens else []
        phase = (storage.meta_get(_PHASE) or b"").decode()
        if phase == "left":
            # its tokens went to others; and once the cluster has purged it, nothing
            # else would stop it coming back as their owner
            raise BadRequest(f"node {self.node_id} left the cluster: {cfg.data_dir} cannot serve again "
                             "(start with an empty data directory to join as a new node)")
        self._rng = random.Random(cfg.seed)
        self.transport = self._make_transport(cfg.listen, FastHandler(self._handle, self._answer_now))
        if cfg.store.fsync and hasattr(self.transport, "before_send"):
            storage.defer_sync()  # group commit: one fsync per loop turn, before its replies leave
            self.transport.before_send = storage.sync_wal
        await self.transport.start()
        self.address = self.transport.address or cfg.listen
        if not tokens and cfg.seeds and not cfg.replace:
            # Asked before we gossip: once our fresh (token-less) state spreads,
            # nobody remembers our old place any more.
            remembered = await self._remembered_tokens()
            if remembered:
                log.info("the cluster remembers node %s: rejoining with its tokens and streaming its data", self.node_id)
                tokens, phase = remembered, "joining"
                storage.meta_put(_TOKENS, msgpack.packb(tokens))
                storage.meta_put(_PHASE, b"joining")
        replica = LocalReplica(storage, ident.actor, persistent_clock(storage))
        self.hints = HintStore(storage)
        self.catalog = Catalog(self)
        self.gossip = GossipNode(
            self.node_id,
            self.address,
            seeds=[s for s in cfg.seeds if s != self.address],
            tokens=tokens,
            status=LEAVING if phase == "leaving" else UP if tokens and phase != "joining" else JOINING,
            incarnation=incarnation,
            config=cfg.gossip,
            rng=self._rng,
            # a departed member stays listed while we hold hints for it: they are
            # rehomed to its successors only while departed() can tell it is gone
            retain=lambda node_id: node_id in self.hints.pending(),
        )
        self.coordinator = Coordinator(
            self, replica, self.hints, self.transport.request,
            max_value_size=cfg.store.max_value_size, max_key_size=cfg.store.max_key_size,
            request_future=getattr(self.transport, "request_future", None),
        )
        self.scanner = Scanner(self.coordinator)
        self.feeds = FeedService(self.coordinator, FeedStore(storage), EntryIds(self.node_id, replica.hlc), self.transport.request,
                                 getattr(self.transport, "flush", lambda: None))
        self.repair = install_repair(self)
        self.feeds.tree_hash = self.repair.trees.segment_hash
        self.elastic = Elastic(self)
        self._rebuild_ring()
        self._tasks.append(asyncio.ensure_future(self._gossip_loop()))
        self._tasks.append(asyncio.ensure_future(self._hint_loop()))
        self._tasks.append(asyncio.ensure_future(self.elastic.cleanup_loop(cfg.cleanup_interval)))
        if not tokens:
            await self._choose_tokens()
        elif phase == "joining":
            self.elastic.spawn(self.elastic.join())
        elif phase == "leaving":
            self.elastic.spawn(self.elastic.leave())
        log.info("node %s listening on %s (actor %s, incarnation %d)", self.node_id, self.address, ident.actor, incarnation)

    async def _choose_tokens(self) -> None:
        """A new node learns the ring from its seeds, then takes balanced tokens."""
        cfg = self.config
        assert self.gossip is not None and self.storage is not None
        if cfg.seeds and any(s != self.address for s in cfg.seeds):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + cfg.join_wait
            while loop.time() < deadline and not self._ring_members():
                await asyncio.sleep(0.05)  # gossip runs meanwhile; this is a bounded wait for the join
            if not self._ring_members():
                raise Unavailable(f"could not reach any seed of {', '.join(cfg.seeds)} within {cfg.join_wait:g}s")
            # one more sync period so the view is complete, not just the first member heard of
            settle = loop.time() + 2 * cfg.gossip.sync_interval
            while loop.time() < settle:
                await asyncio.sleep(0.05)
        if cfg.replace:
            tokens = await self._take_over(cfg.replace)
        else:
            tokens = allocate_tokens(self._ring_members((UP, LEAVING, JOINING)), cfg.vnodes, self._rng)  # joiners too: concurrent joins stay balanced
        if not self._ring_members():
            # the first node of a new cluster: nothing to stream from
            self.storage.meta_put(_TOKENS, msgpack.packb(tokens))
            self._run(self.gossip.update_self(self._now(), tokens=tokens, status=UP))
            self._rebuild_ring()
            return
        self.storage.meta_put(_PHASE, b"joining")
        self.storage.meta_put(_TOKENS, msgpack.packb(tokens))
        self._run(self.gossip.update_self(self._now(), tokens=tokens, status=JOINING))
        self._rebuild_ring()
        self.elastic.spawn(self.elastic.join())

    def finish_join(self) -> None:
        """Our ranges are streamed: become a full owner."""
        self.storage.meta_put(_PHASE, b"")  # type: ignore[union-attr]
        self._run(self.gossip.update_self(self._now(), status=UP))  # type: ignore[union-attr]
        self._rebuild_ring()

    def finish_leave(self) -> None:
        """Our ranges are handed over: go ``left`` and stop shortly after (gossip spreads it)."""
        self.storage.meta_put(_PHASE, b"left")  # type: ignore[union-attr]
        self._run(self.gossip.update_self(self._now(), status=LEFT))  # type: ignore[union-attr]
        # keep answering a little while, so clients with an older view are redirected, not refused
        asyncio.get_running_loop().call_later(3.0, self._stopped.set)

    async def _take_over(self, dead: str) -> list[int]:
        """``--replace``: adopt a dead member's tokens and mark it removed."""
        for seed in self.config.seeds:
            try:
                view = await self.transport.request(seed, ClusterView(), 2.0)  # type: ignore[union-attr]
            except RingKVError:
                continue
            for node_id, _addr, tokens, status, live in view.members:  # type: ignore[attr-defined]
                if node_id != dead:
                    continue
                if live != "down" and status not in ("removed",):
                    raise BadRequest(f"member {dead} is {live}; only a down member can be replaced")
                if status != "removed":
                    await self.transport.request(seed, RemoveMember(dead), 5.0)  # type: ignore[union-attr]
                return list(tokens)
            raise NotFound(f"no member {dead!r} in the cluster")
        raise Unavailable("no seed answered; cannot replace")

    def _make_transport(self, listen: str, handler):
        if self._transport_factory is not None:
            return self._transport_factory(listen, handler)
        return Transport(listen, handler, max_message_size=self.config.max_message_size)

    async def _remembered_tokens(self) -> list[int]:
        """The tokens the cluster still lists for our node id (a node whose disk was wiped)."""
        for seed in self.config.seeds:
            if seed == self.address:
                continue
            try:
                view = await self.transport.request(seed, ClusterView(), 2.0)  # type: ignore[union-attr]
            except RingKVError:
                continue
            for node_id, _addr, tokens, status, _live in view.members:  # type: ignore[attr-defined]
                if node_id == self.node_id and tokens and status not in (LEFT, "removed"):
                    return list(tokens)
            return []
        return []

    async def stop(self, clean: bool = True) -> None:
        self._stopped.set()
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.coordinator is not None:
            await self.coordinator.close()
        if self.transport is not None:
            await self.transport.stop()
        if self.storage is not None and not self.storage.closed:
            if clean:
                with contextlib.suppress(RingKVError):
                    repair = getattr(self, "repair", None)
                    if repair is not None:
                        repair.trees.seal()  # the hash trees load at the next start instead of rebuilding
                    self.storage.flush()
                    mark_clean_shutdown(self.storage, self.coordinator.replica.hlc if self.coordinator is not None else None)
            self.storage.close()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- gossip ----------------------------------------------------------

    def _now(self) -> float:
        return self._loop.time()  # type: ignore[union-attr]

    async def _gossip_loop(self) -> None:
        gossip = self.gossip
        assert gossip is not None
        while True:
            now = self._now()
            due = gossip.next_deadline()
            if now >= due - 1e-6:
                self._run(gossip.tick(max(now, due)))
                continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), due - now)

    def _run(self, effects: list) -> None:
        ring_changed = False
        removed: list[str] = []
        for e in effects:
            if type(e) is Send:
                with contextlib.suppress(RingKVError):
                    self.transport.send(e.addr, e.msg, ttl=2.0)  # type: ignore[union-attr]
            elif type(e) is MemberChanged:
                old, new = e.old, e.new
                if old is None or (old.status, old.tokens) != (new.status, new.tokens):
                    ring_changed = True
                    if old is not None and new.status == "removed" and old.status != "removed" and old.tokens:
                        removed.append(new.node_id)
                if old is None or old.status != new.status or old.addr != new.addr:
                    log.info("member %s %s at %s", new.node_id, new.status, new.addr)
                if new.node_id == self.node_id and new.status == "removed":
                    log.warning("this node was removed from the cluster by an operator; stopping")
                    self._stopped.set()
            elif type(e) is LivenessChanged:
                log.info("member %s is %s (was %s)", e.node_id, e.new, e.old)
            elif type(e) is MemberPurged:
                log.info("member %s (%s) purged from the membership", e.last.node_id, e.last.status)
            elif type(e) is MetadataChanged:
                self.catalog.on_metadata(e.key, e.value)
        if ring_changed:
            before = self.ring
            self._rebuild_ring()
            if removed and getattr(self, "elastic", None) is not None:
                for node_id in removed:  # its hints go to the keys' new owners (Coordinator.deliver_hints)
                    self.elastic.on_removed(node_id, before)
        self._wake.set()

    def _ring_members(self, statuses: tuple = _RING_STATUSES) -> dict[str, tuple[int, ...]]:
        members = self.gossip.members if self.gossip is not None else {}
        return {m.node_id: m.tokens for m in members.values() if m.status in statuses and m.tokens}

    def _rebuild_ring(self) -> None:
        now, future = self._ring_members(), self._ring_members((UP, JOINING))
        self.ring = Ring(now)
        # a settled cluster (nobody joining or leaving) has one ring: writes skip the pending owners' walk
        self.future_ring = self.ring if future == now else Ring(future)

    def pending(self, place: bytes, n: int) -> list[str]:
        """Future owners of ``place`` that are not owners yet (joining, or gaining from a leaver)."""
        if self.future_ring is self.ring or len(self.future_ring) == 0:
            return []
        now = self.ring.preference_list(place, n) if len(self.ring) else []
        return [m for m in self.future_ring.preference_list(place, n) if m not in now and self.is_alive(m)]

    def keyspace(self, name: str) -> KeyspaceInfo:
        return self.catalog.get(name)

    def settled_on(self, ring: bytes) -> bool:
        """Whether our ring has digest ``ring`` and nobody is joining or leaving (no pending owners)."""
        return ring == self.ring.digest and self.future_ring is self.ring

    def keyspaces(self) -> list[KeyspaceInfo]:
        return self.catalog.all()

    # -- ClusterView protocol for the coordinator ------------------------

    def walk(self, key: bytes) -> list[str]:
        ring = self.ring
        return ring.preference_list(key, len(ring)) if len(ring) else []

    def is_alive(self, node_id: str) -> bool:
        if node_id == self.node_id:
            return True
        live = self.gossip.liveness(node_id)  # type: ignore[union-attr]
        return live is not None and live != DOWN

    def departed(self, node_id: str) -> bool:
        return self.gossip.departed(node_id)  # type: ignore[union-attr]

    def addr(self, node_id: str) -> str:
        m = self.gossip.members.get(node_id)  # type: ignore[union-attr]
        if m is None:
            raise NotFound(f"no member {node_id!r}")
        return m.addr

    # -- request handling ------------------------------------------------

    async def _handle(self, peer: bytes, msg: Message) -> Optional[Message]:
        if isinstance(msg, GOSSIP_MESSAGES):
            self._run(self.gossip.receive(peer.decode("utf-8", "replace"), msg, self._now()))  # type: ignore[union-attr]
            return None
        handler = self._handlers.get(type(msg))
        if handler is None:
            raise BadRequest(f"{msg.TYPE} is not a request this node serves")
        return await handler(msg)

    def _answer_now(self, peer: bytes, msg: Message, deadline: Optional[float]):
        """The hot requests, answered from futures: no coroutine, context copy or Task each."""
        t = type(msg)
        coordinator = self.coordinator
        if coordinator is None:
            return NotImplemented
        if t is ReplicaReadMany:
            return coordinator.on_replica_read_many(msg)  # type: ignore[arg-type]
        if t is ReplicaPutMany:
            return coordinator.on_replica_put_many(msg)  # type: ignore[arg-type]
        if t is KvGet:
            return coordinator.get_future(msg, self._work_deadline(deadline))  # type: ignore[arg-type]
        if t is KvReadMany:
            return self._on_read_many(msg)  # type: ignore[arg-type]
        if t is KvWriteMany:
            return self._on_write_many(msg)  # type: ignore[arg-type]
        if t is FeedAppend and getattr(self, "feeds", None) is not None:
            return self.feeds.append_now(msg, self._work_deadline(deadline))  # type: ignore[arg-type]
        if t is KvPut:
            return coordinator.put_future(msg, self._work_deadline(deadline))  # type: ignore[arg-type]
        return NotImplemented

    def _check_view(self, msg: "KvReadMany | KvWriteMany", keyspaces: set) -> None:
        """A client placing keys itself must place them, and see keyspaces, as we do.

        Otherwise it would merge answers from, or copy writes to, replicas
        that are not the keys' owners, or with the wrong settings:
        ``Unavailable`` sends it to a coordinator instead.
        """
        if msg.ring != self.ring.digest:
            raise Unavailable("this node's ring differs from the client's; ask a coordinator")
        if not keyspaces <= {t[0] for t in msg.tables}:
            raise Unavailable("a keyspace's settings are missing; ask a coordinator")
        for name, n, r, w, lww in msg.tables:
            try:
                info = self.catalog.get(name[: -len(FEEDS_SUFFIX)] if name.endswith(FEEDS_SUFFIX) else name)
            except NotFound:
                raise Unavailable(f"keyspace {name!r} is unknown here; ask a coordinator") from None
            if (info.n, info.r, info.w, info.lww) != (n, r, w, lww):
                raise Unavailable(f"keyspace {name!r} changed; ask a coordinator")

    def _on_read_many(self, msg: KvReadMany) -> Message:
        """A client's own quorum read: our stored records of its keys."""
        self._check_view(msg, {ks for ks, _ in msg.keys})
        coordinator = self.coordinator
        assert coordinator is not None
        coordinator.stats["client_reads"] += len(msg.keys)
        return coordinator.on_replica_read_many(msg)

    def _on_write_many(self, msg: KvWriteMany) -> Message:
        """Copies of writes a coordinator made, sent by the client that asked for them."""
        if self.future_ring is not self.ring:
            raise Unavailable("owners are changing (a join or leave): the coordinator copies this write")
        self._check_view(msg, {ks for ks, _, _ in msg.records})
        coordinator = self.coordinator
        assert coordinator is not None
        coordinator.stats["client_copies"] += len(msg.records)
        limit = coordinator.max_key_size
        ok = [[ks, key, raw, None] if len(key) <= limit else None for ks, key, raw in msg.records]
        if all(item is not None for item in ok):
            return coordinator.on_replica_put_many(ReplicaPutMany(ok))
        done = coordinator.on_replica_put_many(ReplicaPutMany([item for item in ok if item is not None]))
        index = [i for i, item in enumerate(ok) if item is not None]  # their places in the message
        failed = [[index[j], code, text] for j, code, text in done.failed]
        code, text, _ = to_wire(TooLarge(f"key is over the {limit}-byte limit"))
        failed += [[i, code, text] for i, item in enumerate(ok) if item is None]
        return ReplicaPutManyDone(sorted(failed))

    def _accept_push(self, msg: StreamPush) -> None:
        self.elastic.streamer.accept(self.coordinator.table(msg.table), msg.entries)

    def _deadlined(self, fn):
        async def handler(msg):
            return await fn(msg, self._deadline())

        return handler

    @staticmethod
    def _immediate(fn):
        async def handler(msg):
            return fn(msg)

        return handler

    def _deadline(self) -> float:
        """When work on the current request must end.

        A little of the requester's budget is kept back for the answer's trip
        home: a coordinator that runs out of time then still reports why (a
        QuorumError with its ack count) before the requester gives up with a
        bare Timeout.
        """
        return self._work_deadline(current_deadline())

    def _work_deadline(self, d: Optional[float]) -> float:
        """:meth:`_deadline` for a request whose deadline is ``d`` (None: the node's default timeout)."""
        now = self._now()
        if d is None:
            return now + self.config.request_timeout
        return d - min(_REPLY_MARGIN, max(0.0, d - now) * 0.1)

    async def _on_get(self, msg: KvGet) -> Message:
        return await self.coordinator.get(msg, self._deadline())  # type: ignore[union-attr]

    async def _on_put(self, msg: KvPut) -> Message:
        return await self.coordinator.put(msg, self._deadline())  # type: ignore[union-attr]

    async def _on_replica_put(self, msg: ReplicaPut) -> None:
        self.coordinator.on_replica_put(msg)  # type: ignore[union-attr]

    async def _on_replica_read(self, msg: ReplicaRead) -> Message:
        return self.coordinator.on_replica_read(msg)  # type: ignore[union-attr]

    async def _on_local_get(self, msg: LocalGet) -> Message:
        return self.coordinator.on_replica_read(ReplicaRead(msg.keyspace, msg.key))  # type: ignore[union-attr]

    async def _on_cluster_view(self, msg: ClusterView) -> Message:
        gossip = self.gossip
        assert gossip is not None
        members = [
            [m.node_id, m.addr, list(m.tokens), m.status, member_liveness(self, m)]
            for m in gossip.members.values()
        ]
        return ClusterViewReply(self.node_id, members)

    def local_stats(self) -> dict:
        return local_stats(self)

    async def status(self) -> dict:
        return await node_status(self)

    async def _on_stats(self, msg: NodeStats) -> Message:
        s = local_stats(self)
        return NodeStatsReply(s["keys"], s["hints"])

    async def _on_status(self, msg: NodeStatus) -> Message:
        return NodeStatusReply(await node_status(self))

    async def _on_remove(self, msg: RemoveMember) -> None:
        if msg.node_id == self.node_id:
            raise BadRequest("a node cannot remove itself; use leave")
        if self.is_alive(msg.node_id):
            raise BadRequest(f"member {msg.node_id} is alive; only a down member can be removed (use leave for a live one)")
        self._run(self.gossip.remove_member(msg.node_id, self._now()))  # type: ignore[union-attr]

    async def _on_leave(self, msg: Leave) -> None:
        """Start leaving: hand our ranges to their new owners, then go ``left`` and stop."""
        if self.elastic.state in ("leaving", "left"):
            return
        others = [m for m in self._ring_members() if m != self.node_id]
        if not others:
            raise BadRequest("the last member cannot leave: there is nobody to hand the data to")
        self.storage.meta_put(_PHASE, b"leaving")  # type: ignore[union-attr]
        self._run(self.gossip.update_self(self._now(), status=LEAVING))  # type: ignore[union-attr]
        self.elastic.spawn(self.elastic.leave())

    # -- hinted handoff --------------------------------------------------

    async def _hint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.hint_interval)  # periodic timer, not a wait for a condition
            if self.hints.total():
                try:
                    await self.coordinator.deliver_hints()  # type: ignore[union-attr]
                except RingKVError as exc:
                    log.debug("hint delivery: %s", exc)
