"""Effects returned by the gossip core, for the node shell (or simulator) to run.

They are plain frozen records. The shell sends :class:`Send` messages (to a
listen address, fire-and-forget: loss is tolerated) and reacts to the change
notices, e.g. rebuilding the ring on :class:`MemberChanged`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ringkv.wire import Message

from .membership import Member

__all__ = ["ALIVE", "SUSPECT", "DOWN", "Send", "MemberChanged", "MemberPurged", "LivenessChanged",
           "MetadataChanged", "Effect"]

ALIVE, SUSPECT, DOWN = "alive", "suspect", "down"


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``msg`` to the node listening at ``addr``."""

    addr: str
    msg: Message


@dataclass(frozen=True, slots=True)
class MemberChanged:
    """A member's entry changed (``old`` is None for a new member).

    Also emitted for version-only changes (a refutation bumps the incarnation);
    compare ``status``/``tokens``/``addr`` to react only to ring changes. A new
    member starts ``alive`` without a :class:`LivenessChanged`.
    """

    old: Member | None
    new: Member


@dataclass(frozen=True, slots=True)
class MemberPurged:
    """A departed (left/removed) member's entry was dropped from the view.

    ``last`` is the entry as it was. The ring does not change (departed
    members own nothing); the member just stops being listed.
    """

    last: Member


@dataclass(frozen=True, slots=True)
class LivenessChanged:
    """This node's opinion of a member's liveness changed (alive/suspect/down)."""

    node_id: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class MetadataChanged:
    """A cluster metadata key changed; ``value`` None means it was deleted."""

    key: str
    value: Any


Effect = Union[Send, MemberChanged, MemberPurged, LivenessChanged, MetadataChanged]
