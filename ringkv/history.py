"""Operation histories and the checker that decides if a run lost anything.

Workloads write unique values, always with the context of a read, and record
for each write the values that read saw (``seen``). That is enough to judge a
Dynamo-style store without knowing its internals:

* **lost**: an acknowledged put whose value is missing at the end although
  no write (acknowledged or not — an unacknowledged one may have landed)
  had seen it. Such a value could only disappear by being dropped.
* **resurrected**: a value present at the end that an *acknowledged* write
  (put or delete) had seen and so superseded. Deleted or overwritten data
  came back.

A write without a context supersedes whatever its coordinating replica
holds, which the client cannot know: record the values it *may* have
superseded as ``maybe_seen`` (every value written to the key before it
completed). They excuse a missing value but never make a surviving one
resurrected.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

__all__ = ["Op", "History", "Verdict"]

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


@dataclass
class Op:
    kind: str  # "put" | "delete" | "get"
    key: bytes
    value: Optional[bytes] = None
    seen: frozenset = frozenset()
    outcome: str = UNKNOWN
    error: str = ""
    client: int = 0
    #: Values this write may have superseded (a write without a context).
    maybe_seen: frozenset = frozenset()


@dataclass
class Verdict:
    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0
    lost: list = field(default_factory=list)
    resurrected: list = field(default_factory=list)
    max_siblings: int = 0

    @property
    def ok(self) -> bool:
        return not self.lost and not self.resurrected

    def row(self) -> dict:
        return {
            "attempted": self.attempted,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "unknown": self.unknown,
            "lost": len(self.lost),
            "resurrected": len(self.resurrected),
            "max_siblings": self.max_siblings,
        }


class History:
    """An append-only record of operations and their outcomes."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def invoke(self, kind: str, key: bytes, value: Optional[bytes] = None, seen: Iterable[bytes] = (), client: int = 0) -> Op:
        op = Op(kind, key, value, frozenset(seen), client=client)
        self.ops.append(op)
        return op

    @staticmethod
    def complete(op: Op, outcome: str, error: str = "") -> None:
        op.outcome, op.error = outcome, error

    def check(self, final: Mapping[bytes, Iterable[bytes]]) -> Verdict:
        """Judge the history against the converged final values of every key."""
        v = Verdict()
        seen_by_any: dict[bytes, set] = defaultdict(set)
        seen_by_acked: dict[bytes, set] = defaultdict(set)
        for op in self.ops:
            if op.kind == "get":
                continue
            v.attempted += 1
            if op.outcome == OK:
                v.acknowledged += 1
                seen_by_acked[op.key] |= op.seen
            elif op.outcome == FAILED:
                v.failed += 1
            else:
                v.unknown += 1
            seen_by_any[op.key] |= op.seen | op.maybe_seen
        finals = {k: set(vals) for k, vals in final.items()}
        for op in self.ops:
            if op.kind == "put" and op.outcome == OK:
                if op.value not in finals.get(op.key, set()) and op.value not in seen_by_any[op.key]:
                    v.lost.append(op)
        for key, vals in finals.items():
            v.max_siblings = max(v.max_siblings, len(vals))
            for val in vals & seen_by_acked[key]:
                v.resurrected.append((key, val))
        return v
