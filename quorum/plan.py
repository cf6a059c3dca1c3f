"""Pure quorum decisions: where a write goes, when a quorum is met, who is stale.

No IO and no clocks here; the coordinator shell feeds these with the ring walk,
liveness and replies, and the simulator can do the same.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional

from ringkv.quorum.dvv import DVVSet, sync, sync_lww

__all__ = ["write_targets", "next_fallback", "Tally", "merge_records", "stale_replicas"]


def write_targets(
    walk: list[str], n: int, coordinator: str, is_alive: Callable[[str], bool]
) -> list[tuple[str, Optional[str]]]:
    """``(node, hint_for)`` for each preferred replica other than the coordinator.

    A preferred replica known to be down is replaced by the next live member
    after the first ``n`` (sloppy quorum) with ``hint_for`` naming the owner
    it holds the copy for. With no fallback left (a cluster of N nodes), the
    coordinator itself keeps the hint: ``(coordinator, owner)``, no message.
    """
    fallbacks = [m for m in walk[n:] if m != coordinator and is_alive(m)]
    out: list[tuple[str, Optional[str]]] = []
    for m in walk[:n]:
        if m == coordinator:
            continue
        if is_alive(m):
            out.append((m, None))
        elif fallbacks:
            out.append((fallbacks.pop(0), m))
        else:
            out.append((coordinator, m))
    return out


def next_fallback(walk: list[str], n: int, used: Iterable[str], is_alive: Callable[[str], bool]) -> Optional[str]:
    """The next live member beyond the preference list not used by this request yet."""
    taken = set(used)
    for m in walk[n:]:
        if m not in taken and is_alive(m):
            return m
    return None


class Tally:
    """Counts replica answers against a quorum of ``required`` out of ``expected``."""

    __slots__ = ("required", "expected", "ok", "failed")

    def __init__(self, required: int, expected: int) -> None:
        self.required = required
        self.expected = expected
        self.ok: list[str] = []
        self.failed: list[str] = []

    def success(self, node: str) -> None:
        self.ok.append(node)

    def failure(self, node: str) -> None:
        self.failed.append(node)

    @property
    def met(self) -> bool:
        return len(self.ok) >= self.required

    @property
    def impossible(self) -> bool:
        """No way left to reach the quorum (every outstanding replica answered)."""
        return len(self.ok) + (self.expected - len(self.ok) - len(self.failed)) < self.required


def merge_records(records: Iterable[Optional[DVVSet]], lww: bool = False) -> DVVSet:
    merge = sync_lww if lww else sync
    out: Optional[DVVSet] = None
    for rec in records:
        out = merge(out, rec)
    return out if out is not None else DVVSet()


def stale_replicas(records: Mapping[str, Optional[DVVSet]], merged: DVVSet) -> list[str]:
    """Replicas whose copy differs from the merged record: read repair sends them ``merged``."""
    if not merged.entries and not merged.clock:
        return []
    return [node for node, rec in records.items() if rec is None or rec != merged]
