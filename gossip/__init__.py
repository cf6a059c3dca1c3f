"""ringkv.gossip: membership, failure detection and gossip rounds (sans-IO).

The node shell drives one :class:`GossipNode` per process (see
:mod:`ringkv.gossip.node` for the tick/receive/next_deadline contract) and
runs the effects it returns.
"""

from .config import GossipConfig
from .effects import (
    ALIVE, DOWN, SUSPECT, Effect, LivenessChanged, MemberChanged, MemberPurged, MetadataChanged, Send,
)
from .membership import (
    JOINING, LEAVING, LEFT, REMOVED, STATUSES, TERMINAL, UP, Member, MetaEntry,
    merge_member, merge_meta, merge_metadata, merge_views,
)
from .messages import GOSSIP_MESSAGES, Ack, Gossip, Join, Nack, Ping, PingReq, Sync, SyncDelta, SyncDigest
from .node import GossipNode
from .sim import SimCluster, convergence_rounds

__all__ = [
    "GossipNode", "GossipConfig",
    "Effect", "Send", "MemberChanged", "MemberPurged", "LivenessChanged", "MetadataChanged",
    "ALIVE", "SUSPECT", "DOWN",
    "Member", "MetaEntry", "JOINING", "UP", "LEAVING", "LEFT", "REMOVED", "STATUSES", "TERMINAL",
    "merge_member", "merge_views", "merge_meta", "merge_metadata",
    "GOSSIP_MESSAGES", "Ping", "Ack", "Nack", "PingReq", "Gossip", "Join", "Sync", "SyncDigest",
    "SyncDelta",
    "SimCluster", "convergence_rounds",
]
