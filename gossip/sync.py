"""Push-pull anti-entropy and joining for :class:`~ringkv.gossip.node.GossipNode` (a mixin).

Every ``sync_interval`` a node opens a sync with a random peer: ``Sync`` with
its view's ``(size, xor-fingerprint)`` and the metadata fingerprint. Agreeing
views stop there (one small message). Otherwise the peer answers with its 64
bucket fingerprints; the opener replies with a ``SyncDigest`` of its members
in the buckets that differ (``[id, rank, incarnation, counter, fp]``) plus its
metadata if that differs; the peer sends a ``SyncDelta`` with the entries the
opener lacks and the ids it wants back, answered by a last ``SyncDelta``.
Traffic is proportional to the difference, not to the cluster size.

Purged (quarantined) members never travel as entries: a node neither wants
nor takes them back; a peer that still lists one in its digest or entries
gets ``["p", tombstone]`` in the delta's gossip instead (see
:mod:`ringkv.gossip.node`).

A new node knows only seed addresses: while it knows no other member it sends
``Join`` (its own entry) to every seed each ``join_retry``; a seed merges the
entry and answers with its whole view, metadata and the suspect/down rumors it
holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .effects import ALIVE, DOWN, SUSPECT
from .membership import RANK, MetaEntry
from .messages import Join, Sync, SyncDelta, SyncDigest

if TYPE_CHECKING:
    from .node import GossipNode

__all__ = ["PushPullMixin"]


class PushPullMixin:
    """Join, sync-open, and the three push-pull handlers."""

    def _on_join(self: GossipNode, msg: Join, now: float) -> None:
        self._merge_raw(msg.member, now)
        rumors = [["s" if st == SUSPECT else "d", nid, self._live.incarnation(nid), self.node_id]
                  for nid, st in self._live.states().items() if st != ALIVE]
        rumors.extend(self._purged_items([msg.member[0]], now))  # a departed id trying to come back
        self._send(msg.member[1], SyncDelta(self.node_id, self.addr,
                                            [m.wire() for m in self._view],
                                            self._meta.wire_all(), [], rumors))

    def _start_sync(self: GossipNode) -> None:
        peers = self._sample(1, (ALIVE, SUSPECT)) or self._sample(1, (DOWN,))
        if peers:
            addr = self._view.get(peers[0]).addr
        elif self._seeds:
            addr = self._rng.choice(self._seeds)
        else:
            return
        self._send(addr, Sync(self.node_id, self.addr, list(self._view.fingerprint()), self._meta.fp, []))

    def _on_sync(self: GossipNode, msg: Sync, now: float) -> None:
        if msg.src_id == self.node_id:
            return
        if tuple(msg.view_fp) == self._view.fingerprint() and msg.meta_fp == self._meta.fp:
            return
        if not msg.buckets:  # cheap opener: answer with our buckets, the opener does the digest
            self._send(msg.src_addr, Sync(self.node_id, self.addr, list(self._view.fingerprint()),
                                          self._meta.fp, self._view.buckets()))
            return
        mine = self._view.buckets()
        diff = [i for i, (a, b) in enumerate(zip(mine, msg.buckets)) if a != b]
        meta_differs = msg.meta_fp != self._meta.fp
        if diff or meta_differs:
            self._send(msg.src_addr, SyncDigest(
                self.node_id, self.addr, diff, self._view.digest(diff), self._meta.fp,
                self._meta.wire_all() if meta_differs else []))

    def _on_sync_digest(self: GossipNode, msg: SyncDigest, now: float) -> None:
        for raw in msg.meta:
            self._merge_meta(MetaEntry.from_wire(raw))
        theirs = {d[0]: d for d in msg.digest}
        send: list = []
        want: list = []
        for b in set(msg.buckets):
            for m in self._view.bucket(b):
                d = theirs.pop(m.node_id, None)
                if d is None:
                    send.append(m.wire())
                    continue
                mk, dk = (RANK[m.status], m.incarnation, m.counter), (d[1], d[2], d[3])
                if mk > dk:
                    send.append(m.wire())
                elif mk < dk:
                    want.append(m.node_id)
                elif m.fp != d[4]:
                    send.append(m.wire())
                    want.append(m.node_id)
        purged = self._purged_items(theirs, now)
        want.extend(k for k in theirs if k not in self._purged)
        meta = self._meta.wire_all() if self._meta.fp != msg.meta_fp else []
        if send or want or meta or purged:
            self._send(msg.src_addr, SyncDelta(self.node_id, self.addr, send, meta, want, purged))

    def _on_sync_delta(self: GossipNode, msg: SyncDelta, now: float) -> None:
        purged = self._purged_items([raw[0] for raw in msg.members], now)
        for raw in msg.members:
            self._merge_raw(raw, now)
        for raw in msg.meta:
            self._merge_meta(MetaEntry.from_wire(raw))
        self._apply_gossip(msg.gossip, now)
        found = [self._view.get(w) for w in msg.want]
        members = [m.wire() for m in found if m is not None]
        if members or purged:
            self._send(msg.src_addr, SyncDelta(self.node_id, self.addr, members, [], [], purged))
