"""The gossip core of one node: membership, SWIM failure detection, push-pull.

Sans-IO, one entry style. The shell drives it through three calls and runs
the effects they return (see :mod:`ringkv.gossip.effects`)::

    core = GossipNode(node_id, addr, seeds=[...], tokens=..., config=...)
    effects = core.tick(now)                  # whenever now >= core.next_deadline()
    effects = core.receive(src, msg, now)     # on every decoded gossip message
    core.next_deadline()                      # when tick has work next (-inf: now)

plus owner actions, which also return effects: :meth:`update_self` (own
status/tokens/addr: joining -> up -> leaving -> left), :meth:`remove_member`
(mark another, dead, member removed) and :meth:`set_metadata`. ``now`` is any
monotonic clock in seconds. Messages go to listen addresses, fire-and-forget;
replies are addressed from fields inside messages, never from ``src``.

This module holds the state and the rules that change it (merging entries,
rumors, refutation, dissemination); probing lives in :mod:`.swim`, push-pull
and joining in :mod:`.sync`. Suspect/down rumors, membership changes and
metadata ride as piggyback on every ping/ack/ping-req (least transmitted,
most recent first, ``max_piggyback`` per message, each item
``retransmit_mult * ceil(log10(N+1))`` times) plus a ``gossip_fanout`` push
every ``gossip_interval`` while anything is pending.

Lifeguard refinements: the rumor about a suspect/down target is always
piggybacked first on messages to it (so it refutes at once), suspicion
timeouts shrink with independent confirmations, relays answer nack, and a
local health score slows our own probing when we look like the slow one.

Departed members are purged so churn does not grow the view forever. A
``left``/``removed`` entry is dropped ``purge_after`` seconds after this node
first saw it terminal (a :class:`MemberPurged` effect), unless the shell's
``retain(node_id)`` says it still needs it (hints to hand over). Its id is then
quarantined for ``purge_quarantine`` seconds with the purged entry kept as a
tombstone: no entry for that id enters the view again. Nothing about a
quarantined id can be news: a live entry is older than the tombstone whatever
its incarnation or counter (a terminal entry outranks every live one), and a
terminal one only says again that the member is gone. A peer still holding the
member (in a sync digest, sync entries or a join) is answered with
``["p", tombstone]``: it learns the departure if it had missed it and purges
the entry at once, so the first node to purge leads the others and views agree
again within a few syncs instead of differing until each node's own timer runs.
Gossip about a purged id that arrives after its quarantine is treated as new.
"""

from __future__ import annotations

import math
import random
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import msgpack

from ringkv.errors import BadRequest, NotFound, ProtocolError, TooLarge
from ringkv.wire import Message

from .broadcast import BroadcastQueue
from .config import GossipConfig
from .effects import (
    ALIVE, DOWN, SUSPECT, LivenessChanged, MemberChanged, MemberPurged, MetadataChanged, Send,
)
from .liveness import LivenessTable
from .membership import (
    JOINING, RANK, REMOVED, STATUSES, TERMINAL, Member, MetaEntry, MetadataMap, View, _interned,
    merge_member,
)
from .messages import Ack, Gossip, Join, Nack, Ping, PingReq, Sync, SyncDelta, SyncDigest
from .swim import SwimMixin, _Probe, _Relay
from .sync import PushPullMixin

__all__ = ["GossipNode", "MAX_META_BYTES"]

#: Metadata is for small cluster-wide definitions (keyspaces), gossiped whole.
MAX_META_BYTES = 64 * 1024
#: Seconds before asking ``retain`` again about a departed member it kept.
RETAIN_RECHECK = 30.0
#: Purged markers per message (well under the gossip list limit); the rest
#: go with later syncs.
MAX_PURGED_ITEMS = 1024


class GossipNode(SwimMixin, PushPullMixin):
    """One node's membership + failure-detection state machine."""

    def __init__(
        self,
        node_id: str,
        addr: str,
        *,
        seeds: Sequence[str] = (),
        tokens: Iterable[int] = (),
        status: str = JOINING,
        incarnation: int = 0,
        config: GossipConfig | None = None,
        rng: random.Random | None = None,
        retain: Callable[[str], bool] | None = None,
    ) -> None:
        """``retain(node_id)``, if given, is asked before purging a departed
        member; while it returns True the entry is kept (e.g. the shell still
        holds hints that go to that member's successors)."""
        if status in TERMINAL:
            raise BadRequest("a node cannot start as left or removed")
        self.config = config or GossipConfig()
        self._rng = rng or random.Random()
        self._self = Member(node_id, addr, tuple(tokens), status, incarnation, 0)
        self._view = View([self._self])
        self._meta = MetadataMap()
        self._live = LivenessTable(self.config)
        self._queue = BroadcastQueue()
        self._queue.add(("m", node_id), ["m", self._self.wire()])
        self._seeds = [s for s in dict.fromkeys(seeds) if s != addr]
        self._peers: list[str] = []            # non-terminal members except self
        self._peer_set: set[str] = set()
        self._order: list[str] = []            # probe round-robin
        self._seq = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._awareness = 0
        self._started = False
        self._next_probe = self._next_gossip = self._next_sync = self._next_join = 0.0
        self._out: list = []
        self._retain = retain
        self._purge_at: dict[str, float] = {}                   # terminal member -> purge time
        self._purged: dict[str, tuple[Member, float]] = {}     # quarantine: tombstone, until
        self._next_purge = math.inf
        self._handlers = {
            Ping: self._on_ping, Ack: self._on_ack, Nack: self._on_nack, PingReq: self._on_ping_req,
            Gossip: self._on_gossip, Join: self._on_join, Sync: self._on_sync,
            SyncDigest: self._on_sync_digest, SyncDelta: self._on_sync_delta,
        }

    # -- read-only state ---------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._self.node_id

    @property
    def addr(self) -> str:
        return self._self.addr

    @property
    def self_member(self) -> Member:
        return self._self

    @property
    def members(self) -> Mapping[str, Member]:
        """The view: node_id -> Member, including left/removed entries until purged."""
        return MappingProxyType(self._view.mapping())

    def departed(self, node_id: str) -> bool:
        """True for a member that left or was removed, listed or already purged."""
        m = self._view.get(node_id)
        return m.terminal if m is not None else node_id in self._purged

    def quarantined(self) -> Mapping[str, Member]:
        """Purged members still in quarantine: node_id -> tombstone entry."""
        return {k: tomb for k, (tomb, _) in self._purged.items()}

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Cluster metadata: key -> value (deleted keys absent). Treat values as immutable."""
        return MappingProxyType(self._meta.values())

    def liveness(self, node_id: str) -> str | None:
        """alive/suspect/down as seen here; ALIVE for self; None if not a live member."""
        return ALIVE if node_id == self.node_id and not self._self.terminal else self._live.state(node_id)

    def liveness_map(self) -> dict[str, str]:
        out = self._live.states()
        if not self._self.terminal:
            out[self.node_id] = ALIVE
        return out

    def view_fingerprint(self) -> tuple[int, int]:
        return self._view.fingerprint()

    @property
    def awareness(self) -> int:
        return self._awareness

    @property
    def pending_broadcasts(self) -> int:
        """Items still to disseminate (a leaving node may wait for 0 before exiting)."""
        return len(self._queue)

    # -- entry points ------------------------------------------------------

    def next_deadline(self) -> float:
        """The time at which :meth:`tick` next has work to do."""
        if not self._started:
            return -math.inf
        d = min(self._next_probe, self._next_sync)
        p = self._probe
        if p is not None and not p.acked and not p.indirect_sent:
            d = min(d, p.direct_deadline)
        if self._relays:
            d = min(d, min(r.deadline for r in self._relays.values()))
        d = min(d, self._live.next_deadline(), self._next_purge)
        if len(self._queue):
            d = min(d, self._next_gossip)
        if self._seeds and not self._peers:
            d = min(d, self._next_join)
        return d

    def tick(self, now: float) -> list:
        """Run timers due at ``now``; returns effects."""
        if not self._started:
            self._start(now)
        self._tick_probe(now)
        for seq in [s for s, r in self._relays.items() if r.deadline <= now]:
            r = self._relays.pop(seq)
            self._send(r.requester, Nack(r.req_seq, self.node_id))
        for node_id, inc in self._live.expired(now):
            self._rumor("d", node_id, inc, self.node_id, now)
        if now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval
            if len(self._queue):
                for peer in self._sample(self.config.gossip_fanout, (ALIVE, SUSPECT)):
                    self._send(self._view.get(peer).addr, Gossip(self.node_id, self._piggyback(peer)))
        if now >= self._next_sync:
            self._next_sync = now + self.config.sync_interval * self._scale()
            self._start_sync()
        if self._seeds and not self._peers and now >= self._next_join:
            self._next_join = now + self.config.join_retry
            for seed in self._seeds:
                self._send(seed, Join(self._self.wire()))
        if now >= self._next_purge:
            self._sweep(now)
        return self._flush()

    def receive(self, src: str, msg: Message, now: float) -> list:
        """Handle one message; malformed or unexpected messages are ignored.

        ``src`` is informational: replies go to the address inside the message.
        """
        if not self._started:
            self._start(now)
        handler = self._handlers.get(type(msg))
        if handler is None:
            return []
        try:
            msg.check()
        except ProtocolError:
            return []
        handler(msg, now)
        return self._flush()

    # -- owner actions -----------------------------------------------------

    def update_self(self, now: float, *, status: str | None = None,
                    tokens: Iterable[int] | None = None, addr: str | None = None) -> list:
        """Change our own status (joining/up/leaving/left), tokens or address."""
        if self._self.terminal:
            raise BadRequest(f"{self.node_id} is {self._self.status}; rejoin under a new node id")
        if status is not None and (status not in STATUSES or status == REMOVED):
            raise BadRequest("own status must be joining, up, leaving or left")
        old = self._self
        new = Member(old.node_id, addr or old.addr, old.tokens if tokens is None else tuple(tokens),
                     status or old.status, old.incarnation, old.counter + 1)
        self._set_self(new, old)
        return self._flush()

    def remove_member(self, node_id: str, now: float) -> list:
        """Mark another member ``removed`` (for a dead node; final for its id)."""
        if node_id == self.node_id:
            raise BadRequest("a node cannot remove itself; update_self(status='left') instead")
        m = self._view.get(node_id)
        if m is None:
            raise NotFound(f"no member {node_id!r}")
        if m.status != REMOVED:
            self._merge(Member(m.node_id, m.addr, m.tokens, REMOVED, m.incarnation, m.counter + 1), now)
        return self._flush()

    def set_metadata(self, key: str, value: Any, now: float) -> list:
        """Set (or, with ``value=None``, delete) a cluster metadata key.

        ``value`` is stored as msgpack gives it back (tuples become lists), so
        this node holds exactly what every other node will hold.
        """
        try:
            packed = msgpack.packb(value)
            value = msgpack.unpackb(packed)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadRequest(f"metadata value is not plain msgpack data: {exc}") from None
        if len(packed) > MAX_META_BYTES:
            raise TooLarge(f"metadata value is {len(packed)} bytes packed; the limit is {MAX_META_BYTES}")
        cur = self._meta.get(key) if isinstance(key, str) else None
        entry = MetaEntry(key, (cur.counter + 1) if cur else 1, self.node_id, value)
        self._merge_meta(entry)
        return self._flush()

    # -- internals: bookkeeping ---------------------------------------------

    def _flush(self) -> list:
        out, self._out = self._out, []
        return out

    def _send(self, addr: str, msg: Message) -> None:
        self._out.append(Send(addr, msg))

    def _scale(self) -> int:
        return 1 + self._awareness

    def _health(self, delta: int) -> None:
        self._awareness = max(0, min(self.config.awareness_max - 1, self._awareness + delta))

    def _n(self) -> int:
        return len(self._peers) + 1

    def _start(self, now: float) -> None:
        self._started = True
        r, c = self._rng.random, self.config
        self._next_probe = now + r() * c.probe_interval
        self._next_sync = now + r() * c.sync_interval
        self._next_gossip = now + r() * c.gossip_interval
        self._next_join = now

    def _sample(self, k: int, states: tuple[str, ...], exclude: str = "") -> list[str]:
        """Up to ``k`` distinct random peers whose liveness is in ``states``."""
        peers, state = self._peers, self._live.state
        if len(peers) <= 4 * k + 8:
            cands = [p for p in peers if p != exclude and state(p) in states]
            return self._rng.sample(cands, min(k, len(cands)))
        out: list[str] = []
        for _ in range(8 * k):
            p = peers[self._rng.randrange(len(peers))]
            if p != exclude and p not in out and state(p) in states:
                out.append(p)
                if len(out) == k:
                    break
        return out

    def _piggyback(self, target: str | None = None) -> list:
        items: list = []
        skip = None
        if target is not None:
            st = self._live.state(target)
            if st == SUSPECT or st == DOWN:  # Lifeguard buddy system: tell it first
                items.append(["s" if st == SUSPECT else "d", target,
                              self._live.incarnation(target), self.node_id])
                skip = ("l", target)
        limit = self.config.retransmit_limit(self._n())
        items.extend(self._queue.take(self.config.max_piggyback - len(items), limit, skip))
        return items

    def _add_peer(self, node_id: str) -> None:
        if node_id not in self._peer_set:
            self._peer_set.add(node_id)
            self._peers.append(node_id)
            # probe new members soon: insert at a random place in the remaining rotation
            self._order.insert(int(self._rng.random() * (len(self._order) + 1)), node_id)

    def _drop_peer(self, node_id: str) -> None:
        if node_id in self._peer_set:
            self._peer_set.discard(node_id)
            i = self._peers.index(node_id)
            self._peers[i] = self._peers[-1]
            self._peers.pop()

    # -- internals: state changes -------------------------------------------

    def _set_self(self, new: Member, old: Member) -> None:
        self._self = new
        self._view.put(new)
        self._queue.add(("m", new.node_id), ["m", new.wire()])
        self._out.append(MemberChanged(old, new))

    def _refute(self, inc: int) -> None:
        """Someone thinks we are at ``inc`` or worse: outbid it."""
        old = self._self
        if old.terminal:
            return
        new = Member(old.node_id, old.addr, old.tokens, old.status, max(inc, old.incarnation) + 1, 0)
        self._health(1)
        self._set_self(new, old)

    def _merge(self, m: Member, now: float) -> None:
        node_id = m.node_id
        if node_id == self.node_id:
            cur = self._self
            if m.order() > cur.order():
                if m.terminal:
                    self._view.put(m)
                    self._self = m
                    self._queue.add(("m", node_id), ["m", m.wire()])
                    self._out.append(MemberChanged(cur, m))
                else:
                    self._refute(m.incarnation)
            return
        changed, old = self._view.merge(m)
        if not changed:
            return
        self._out.append(MemberChanged(old, m))
        self._queue.add(("m", node_id), ["m", m.wire()])
        if m.terminal:
            self._live.forget(node_id)
            self._drop_peer(node_id)
            if node_id not in self._purge_at:
                self._schedule_purge(node_id, now + self.config.purge_after)
        elif old is None:
            self._live.add(node_id, m.incarnation)
            self._add_peer(node_id)
        else:
            self._observe(node_id, m.incarnation)

    def _merge_raw(self, raw: list, now: float) -> None:
        """Merge a (validated) wire entry, skipping the parse when it is not newer."""
        if raw[0] in self._purged:
            self._absorb(raw, now)
            return
        cur = self._self if raw[0] == self.node_id else self._view.get(raw[0])
        if cur is not None:
            key = (RANK[raw[3]], raw[4], raw[5])
            ck = (RANK[cur.status], cur.incarnation, cur.counter)
            if key < ck or (key == ck and raw[1] == cur.addr and raw[3] == cur.status
                            and tuple(raw[2]) == cur.tokens):
                return
        self._merge(_interned(raw), now)

    def _merge_meta(self, e: MetaEntry) -> None:
        if self._meta.merge(e):
            self._queue.add(("k", e.key), ["k", e.wire()])
            self._out.append(MetadataChanged(e.key, e.value))

    def _observe(self, node_id: str, inc: int) -> None:
        old = self._live.observe(node_id, inc)
        if old is not None:
            self._out.append(LivenessChanged(node_id, old, ALIVE))

    def _rumor(self, kind: str, node_id: str, inc: int, by: str, now: float) -> None:
        """Apply a suspect ("s") or down ("d") rumor, ours or a peer's."""
        if node_id == self.node_id:
            if inc >= self._self.incarnation:
                self._refute(inc)
            return
        if node_id not in self._peer_set:
            return
        if kind == "s":
            old = self._live.state(node_id)
            res = self._live.suspect(node_id, inc, by, now, self._n())
            if res is None:
                return
            if res == "new":
                self._out.append(LivenessChanged(node_id, old, SUSPECT))
        else:
            old = self._live.down(node_id, inc)
            if old is None:
                return
            self._out.append(LivenessChanged(node_id, old, DOWN))
        self._queue.add(("l", node_id), [kind, node_id, inc, by])

    def _apply_gossip(self, items: list, now: float) -> None:
        for item in items:
            kind = item[0]
            if kind == "m":
                self._merge_raw(item[1], now)
            elif kind == "k":
                cur = self._meta.get(item[1][0])
                if cur is None or item[1][1] >= cur.counter:
                    self._merge_meta(MetaEntry.from_wire(item[1]))
            elif kind == "p":
                self._on_purged(item[1], now)
            else:
                self._rumor(kind, item[1], item[2], item[3], now)

    def _on_gossip(self, msg: Gossip, now: float) -> None:
        self._apply_gossip(msg.gossip, now)

    # -- internals: purging departed members ----------------------------------

    def _schedule_purge(self, node_id: str, at: float) -> None:
        self._purge_at[node_id] = at
        if at < self._next_purge:
            self._next_purge = at

    def _sweep(self, now: float) -> None:
        """Purge departed members that are due; end quarantines that ran out."""
        nxt = math.inf
        for node_id, at in list(self._purge_at.items()):
            if at > now:
                nxt = min(nxt, at)
            elif self._retain is not None and self._retain(node_id):
                at = now + RETAIN_RECHECK
                self._purge_at[node_id] = at
                nxt = min(nxt, at)
            else:
                self._purge(node_id, now)
        for node_id, (_, until) in list(self._purged.items()):
            if until <= now:
                del self._purged[node_id]
            else:
                nxt = min(nxt, until)
        self._next_purge = nxt

    def _purge(self, node_id: str, now: float) -> None:
        del self._purge_at[node_id]
        m = self._view.discard(node_id)
        if m is None:
            return
        self._queue.discard(("m", node_id))
        self._purged[node_id] = (m, now + self.config.purge_quarantine)
        self._out.append(MemberPurged(m))

    def _absorb(self, raw: list, now: float) -> None:
        """An entry for a quarantined id: fold it into the tombstone, never into the view.

        A newer (terminal) entry replaces the tombstone; any copy restarts the
        quarantine, since someone still holds the member.
        """
        tomb, _ = self._purged[raw[0]]
        if raw[3] in TERMINAL:
            tomb = merge_member(tomb, _interned(raw))  # type: ignore[assignment]
        until = now + self.config.purge_quarantine
        self._purged[raw[0]] = (tomb, until)
        if until < self._next_purge:
            self._next_purge = until

    def _purged_items(self, node_ids: Iterable[str], now: float) -> list:
        """``["p", tombstone]`` for the quarantined ones among ``node_ids`` a peer still holds."""
        out: list = []
        for node_id in node_ids:
            q = self._purged.get(node_id)
            if q is not None and len(out) < MAX_PURGED_ITEMS:
                self._purged[node_id] = (q[0], now + self.config.purge_quarantine)
                out.append(["p", list(q[0].wire())])
        return out

    def _on_purged(self, raw: list, now: float) -> None:
        """A peer purged this departed member: learn the departure, purge it soon too."""
        node_id = raw[0]
        if node_id == self.node_id or node_id in self._purged:
            self._merge_raw(raw, now)  # ourselves: we are gone; quarantined: refresh
            return
        if self._view.get(node_id) is None:
            return
        self._merge_raw(raw, now)
        m = self._view.get(node_id)
        if m is not None and m.terminal and self._purge_at.get(node_id, math.inf) > now:
            self._schedule_purge(node_id, now)
