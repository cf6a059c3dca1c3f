"""SWIM probing for :class:`~ringkv.gossip.node.GossipNode` (a mixin).

One member per protocol period, round-robin over a shuffled list (new members
are inserted at a random place so they are probed soon): direct ping; after
``ping_timeout`` ping-req through ``indirect_checks`` random alive peers; at
the end of the period, no ack means *suspect*. Relays answer nack when the
target stays silent, so a prober whose own links are bad (no nacks either)
raises its local health score instead of blaming the target (Lifeguard).
Down members stay in the rotation, without indirect probes: a ping to them
carries the down rumor, so a node that is back (restart, healed partition)
refutes it and its ack brings it back to alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .effects import ALIVE, DOWN, SUSPECT
from .messages import Ack, Nack, Ping, PingReq

if TYPE_CHECKING:
    from .node import GossipNode

__all__ = ["SwimMixin"]

#: Ping-reqs relayed at once; beyond this a node declines to relay.
MAX_RELAYS = 64


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    addr: str
    direct_deadline: float
    acked: bool = False
    indirect_sent: bool = False
    nacks_expected: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    requester: str
    req_seq: int
    target: str
    deadline: float


class SwimMixin:
    """Probe scheduling and the ping / ack / nack / ping-req handlers."""

    def _tick_probe(self: GossipNode, now: float) -> None:
        p = self._probe
        if p is not None and not p.acked and not p.indirect_sent and now >= p.direct_deadline:
            p.indirect_sent = True
            if self._live.state(p.target) != DOWN:
                peers = self._sample(self.config.indirect_checks, (ALIVE,), exclude=p.target)
                p.nacks_expected = len(peers)
                for peer in peers:
                    self._send(self._view.get(peer).addr, PingReq(
                        p.seq, self.node_id, self.addr, p.target, p.addr, self._piggyback(peer)))
        if now >= self._next_probe:
            if p is not None:
                self._finish_probe(p, now)
            self._start_probe(now)

    def _finish_probe(self: GossipNode, p: _Probe, now: float) -> None:
        self._probe = None
        if p.acked:
            self._health(-1)
            return
        if self._live.state(p.target) in (ALIVE, SUSPECT):
            self._health(p.nacks_expected - p.nacks if p.nacks_expected else 1)
            self._rumor("s", p.target, self._live.incarnation(p.target), self.node_id, now)

    def _next_target(self: GossipNode) -> str | None:
        for _ in range(2):
            while self._order:
                t = self._order.pop()
                if t in self._peer_set:
                    return t
            self._order = list(self._peers)
            self._rng.shuffle(self._order)
        return None

    def _start_probe(self: GossipNode, now: float) -> None:
        scale = self._scale()
        self._next_probe = now + self.config.probe_interval * scale
        target = self._next_target() if not self._self.terminal else None
        if target is None:
            return
        self._seq += 1
        addr = self._view.get(target).addr
        self._probe = _Probe(self._seq, target, addr, now + self.config.ping_timeout * scale)
        self._send(addr, Ping(self._seq, self.node_id, self.addr, target, self._piggyback(target)))

    def _on_ping(self: GossipNode, msg: Ping, now: float) -> None:
        self._apply_gossip(msg.gossip, now)
        if msg.target_id != self.node_id:
            return  # meant for another node (e.g. the one that used to live at this address)
        self._send(msg.src_addr, Ack(msg.seq, self.node_id, self._self.incarnation,
                                     self._piggyback(msg.src_id)))

    def _on_ack(self: GossipNode, msg: Ack, now: float) -> None:
        self._apply_gossip(msg.gossip, now)
        p = self._probe
        if p is not None and msg.seq == p.seq and msg.src_id == p.target:
            p.acked = True
            self._observe(msg.src_id, msg.incarnation)
            return
        r = self._relays.get(msg.seq)
        if r is not None and msg.src_id == r.target:
            del self._relays[msg.seq]
            self._observe(msg.src_id, msg.incarnation)
            self._send(r.requester, Ack(r.req_seq, msg.src_id, msg.incarnation, []))

    def _on_nack(self: GossipNode, msg: Nack, now: float) -> None:
        p = self._probe
        if p is not None and msg.seq == p.seq and p.nacks < p.nacks_expected:
            p.nacks += 1

    def _on_ping_req(self: GossipNode, msg: PingReq, now: float) -> None:
        self._apply_gossip(msg.gossip, now)
        if msg.target_id == self.node_id or len(self._relays) >= MAX_RELAYS:
            return
        self._seq += 1
        self._relays[self._seq] = _Relay(msg.src_addr, msg.seq, msg.target_id,
                                         now + self.config.indirect_timeout)
        self._send(msg.target_addr, Ping(self._seq, self.node_id, self.addr, msg.target_id,
                                         self._piggyback(msg.target_id)))
