"""Per-observer liveness (alive / suspect / down), kept apart from membership.

SWIM's rules, keyed by the member's incarnation:

* ``suspect(i)`` applies to a member alive at incarnation <= i; another
  ``suspect(i)`` from a new node while suspect counts as a confirmation;
* ``down(i)`` applies unless we already know incarnation > i;
* evidence of incarnation > the one we hold (its refutation, an ack from it,
  a newer membership entry) makes a member alive again, also when down: that
  is how a restarted node, or one across a healed partition, comes back.

Suspicion timeouts follow Lifeguard: start at ``max`` and shrink towards
``min`` as independent confirmations arrive, ``max - (max-min) *
log(c+1)/log(k+1)``, so a node that many peers fail to reach is declared down
quickly while a lone (possibly slow) accuser waits longer.
"""

from __future__ import annotations

import math

from .config import GossipConfig
from .effects import ALIVE, DOWN, SUSPECT

__all__ = ["LivenessTable", "Suspicion"]


class Suspicion:
    """A running suspicion timer with Lifeguard confirmations."""

    __slots__ = ("start", "lo", "hi", "k", "confirmers", "deadline")

    def __init__(self, start: float, lo: float, hi: float, k: int, by: str) -> None:
        self.start, self.lo, self.hi, self.k = start, lo, hi, k
        self.confirmers = {by}
        self.deadline = start + self._timeout()

    def _timeout(self) -> float:
        c = len(self.confirmers) - 1
        if self.k < 1 or c >= self.k:
            return self.lo
        frac = math.log(c + 1) / math.log(self.k + 1)
        return max(self.lo, self.hi - (self.hi - self.lo) * frac)

    def confirm(self, by: str) -> bool:
        """Count an independent confirmation; True if it was new."""
        if by in self.confirmers:
            return False
        self.confirmers.add(by)
        self.deadline = self.start + self._timeout()
        return True


class LivenessTable:
    """Liveness of every non-terminal member as seen by this node.

    Plain dicts rather than an object per member: a simulation holds N^2 of them.
    """

    def __init__(self, config: GossipConfig) -> None:
        self._cfg = config
        self._state: dict[str, str] = {}
        self._inc: dict[str, int] = {}
        self._suspects: dict[str, Suspicion] = {}

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._state

    def state(self, node_id: str) -> str | None:
        return self._state.get(node_id)

    def incarnation(self, node_id: str) -> int:
        return self._inc.get(node_id, 0)

    def states(self) -> dict[str, str]:
        return dict(self._state)

    def add(self, node_id: str, inc: int) -> None:
        if node_id not in self._state:
            self._state[node_id] = ALIVE
            self._inc[node_id] = inc

    def forget(self, node_id: str) -> None:
        self._state.pop(node_id, None)
        self._inc.pop(node_id, None)
        self._suspects.pop(node_id, None)

    def observe(self, node_id: str, inc: int) -> str | None:
        """Evidence the member runs at ``inc``; returns the old state if it became alive."""
        cur = self._inc.get(node_id)
        if cur is None or inc <= cur:
            return None
        self._inc[node_id] = inc
        old = self._state[node_id]
        if old == ALIVE:
            return None
        self._state[node_id] = ALIVE
        self._suspects.pop(node_id, None)
        return old

    def suspect(self, node_id: str, inc: int, by: str, now: float, n: int) -> str | None:
        """Apply a suspect rumor: ``"new"``, ``"confirm"`` or None (no change)."""
        cur = self._inc.get(node_id)
        if cur is None or inc < cur:
            return None
        state = self._state[node_id]
        if state == DOWN and inc <= cur:
            return None
        if state == SUSPECT and inc == cur:
            s = self._suspects.get(node_id)
            return "confirm" if s is not None and s.confirm(by) else None
        lo, hi = self._cfg.suspicion_bounds(n)
        k = min(self._cfg.suspicion_confirmations, n - 2)
        self._state[node_id], self._inc[node_id] = SUSPECT, inc
        self._suspects[node_id] = Suspicion(now, lo, hi, k, by)
        return "new"

    def down(self, node_id: str, inc: int) -> str | None:
        """Apply a down rumor; returns the old state if it changed."""
        cur = self._inc.get(node_id)
        if cur is None or inc < cur:
            return None
        old = self._state[node_id]
        if old == DOWN and inc <= cur:
            return None
        self._state[node_id], self._inc[node_id] = DOWN, inc
        self._suspects.pop(node_id, None)
        return None if old == DOWN else old

    def expired(self, now: float) -> list[tuple[str, int]]:
        """Suspicions whose timer ran out: ``(node_id, incarnation)``."""
        return [(k, self._inc[k]) for k, s in self._suspects.items() if s.deadline <= now]

    def next_deadline(self) -> float:
        return min((s.deadline for s in self._suspects.values()), default=math.inf)
