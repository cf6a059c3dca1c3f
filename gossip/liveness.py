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


class _Entry:
    __slots__ = ("state", "inc", "suspicion")

    def __init__(self, inc: int) -> None:
        self.state = ALIVE
        self.inc = inc
        self.suspicion: Suspicion | None = None


class LivenessTable:
    """Liveness of every non-terminal member as seen by this node."""

    def __init__(self, config: GossipConfig) -> None:
        self._cfg = config
        self._e: dict[str, _Entry] = {}
        self._suspects: dict[str, Suspicion] = {}

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._e

    def state(self, node_id: str) -> str | None:
        e = self._e.get(node_id)
        return e.state if e is not None else None

    def incarnation(self, node_id: str) -> int:
        e = self._e.get(node_id)
        return e.inc if e is not None else 0

    def states(self) -> dict[str, str]:
        return {k: e.state for k, e in self._e.items()}

    def add(self, node_id: str, inc: int) -> None:
        if node_id not in self._e:
            self._e[node_id] = _Entry(inc)

    def forget(self, node_id: str) -> None:
        self._e.pop(node_id, None)
        self._suspects.pop(node_id, None)

    def observe(self, node_id: str, inc: int) -> str | None:
        """Evidence the member runs at ``inc``; returns the old state if it became alive."""
        e = self._e.get(node_id)
        if e is None or inc <= e.inc:
            return None
        e.inc = inc
        if e.state == ALIVE:
            return None
        old, e.state, e.suspicion = e.state, ALIVE, None
        self._suspects.pop(node_id, None)
        return old

    def suspect(self, node_id: str, inc: int, by: str, now: float, n: int) -> str | None:
        """Apply a suspect rumor: ``"new"``, ``"confirm"`` or None (no change)."""
        e = self._e.get(node_id)
        if e is None or inc < e.inc or (e.state == DOWN and inc <= e.inc):
            return None
        if e.state == SUSPECT and inc == e.inc:
            return "confirm" if e.suspicion is not None and e.suspicion.confirm(by) else None
        lo, hi = self._cfg.suspicion_bounds(n)
        k = min(self._cfg.suspicion_confirmations, n - 2)
        e.state, e.inc = SUSPECT, inc
        e.suspicion = self._suspects[node_id] = Suspicion(now, lo, hi, k, by)
        return "new"

    def down(self, node_id: str, inc: int) -> str | None:
        """Apply a down rumor; returns the old state if it changed."""
        e = self._e.get(node_id)
        if e is None or inc < e.inc or (e.state == DOWN and inc <= e.inc):
            return None
        old, e.state, e.inc, e.suspicion = e.state, DOWN, inc, None
        self._suspects.pop(node_id, None)
        return None if old == DOWN else old

    def expired(self, now: float) -> list[tuple[str, int]]:
        """Suspicions whose timer ran out: ``(node_id, incarnation)``."""
        return [(k, self._e[k].inc) for k, s in self._suspects.items() if s.deadline <= now]

    def next_deadline(self) -> float:
        return min((s.deadline for s in self._suspects.values()), default=math.inf)
