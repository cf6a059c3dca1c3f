"""What ``ringkv status`` reports: the cluster as one node sees it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

from ringkv.errors import RingKVError
from ringkv.node_messages import NodeStats
from ringkv.storage import keyspace_cf

if TYPE_CHECKING:
    from ringkv.server import NodeServer

__all__ = ["local_stats", "node_status", "member_liveness"]


def local_stats(server: "NodeServer") -> dict:
    """This node's own figures: estimated keys stored, hints held."""
    storage = server.storage
    assert storage is not None
    keys = sum(storage.approximate_keys(keyspace_cf(k.name)) for k in server.keyspaces() if storage.has_cf(keyspace_cf(k.name)))
    return {"keys": keys, "hints": server.hints.total()}


def member_liveness(server: "NodeServer", m) -> str:
    """Our opinion of a member; ``gone`` for one that left or was removed (nobody probes it)."""
    if m.node_id == server.node_id:
        return "alive"
    if m.status in ("left", "removed"):
        return "gone"
    return server.gossip.liveness(m.node_id) or "alive"  # type: ignore[union-attr]


async def node_status(server: "NodeServer") -> dict:
    """Members (status, liveness, tokens, ownership, keys, hints) and this node's internals."""
    gossip = server.gossip
    assert gossip is not None
    ownership = server.ring.ownership() if len(server.ring) else {}
    members = sorted(gossip.members.values(), key=lambda m: m.node_id)

    async def stats_of(m) -> dict:
        if m.node_id == server.node_id:
            return local_stats(server)
        if not server.is_alive(m.node_id) or m.status in ("left", "removed"):
            return {"keys": None, "hints": None}
        try:
            r = await server.transport.request(m.addr, NodeStats(), 1.0)  # type: ignore[union-attr]
            return {"keys": r.keys, "hints": r.hints}  # type: ignore[attr-defined]
        except RingKVError:
            return {"keys": None, "hints": None}

    stats = await asyncio.gather(*(stats_of(m) for m in members))
    return {
        "node_id": server.node_id,
        "addr": server.address,
        "members": [
            {
                "node_id": m.node_id,
                "addr": m.addr,
                "status": m.status,
                "liveness": member_liveness(server, m),
                "tokens": len(m.tokens),
                "ownership": ownership.get(m.node_id, 0.0),
                **s,
            }
            for m, s in zip(members, stats)
        ],
        "hints_pending": server.hints.pending(),
        "keyspaces": [k.to_dict() for k in server.keyspaces()],
        "transport": dataclasses.asdict(server.transport.stats),  # type: ignore[union-attr]
        "quorum": dict(server.coordinator.stats),  # type: ignore[union-attr]
        "elastic": server.elastic.status(),
    }
