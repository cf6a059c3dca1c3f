"""Wire messages about the cluster itself: views, status, per-node stats."""

from __future__ import annotations

from ringkv.errors import ProtocolError
from ringkv.wire import Message, message

__all__ = ["ClusterView", "ClusterViewReply", "NodeStatus", "NodeStatusReply", "NodeStats", "NodeStatsReply", "RemoveMember", "Leave"]


@message("cluster.view")
class ClusterView(Message):
    """Ask a node for its membership view (clients build their ring from it)."""


@message("cluster.view_reply")
class ClusterViewReply(Message):
    """``members``: ``[node_id, addr, tokens, status, liveness]`` per member."""

    node_id: str
    members: list

    def check(self) -> None:
        for m in self.members:
            if not (
                isinstance(m, list)
                and len(m) == 5
                and isinstance(m[0], str)
                and isinstance(m[1], str)
                and isinstance(m[2], list)
                and all(type(t) is int and 0 <= t < 1 << 64 for t in m[2])
                and isinstance(m[3], str)
                and isinstance(m[4], str)
            ):
                raise ProtocolError("cluster.view_reply: bad member entry")


@message("node.status")
class NodeStatus(Message):
    """Ask for the cluster status as this node sees it (``ringkv status``)."""


@message("node.status_reply")
class NodeStatusReply(Message):
    status: dict


@message("node.stats")
class NodeStats(Message):
    """Ask a node for its own local figures (keys stored, hints held)."""


@message("node.stats_reply")
class NodeStatsReply(Message):
    keys: int
    hints: int


@message("node.remove")
class RemoveMember(Message):
    """Mark a dead member removed (operator action)."""

    node_id: str


@message("node.leave")
class Leave(Message):
    """Ask the receiving node to leave the cluster and stop."""
