"""Tombstone garbage collection: when a deleted record may be forgotten.

A delete is a tombstone (a versioned entry with no value), and it must
outlive every copy of the value it deleted, or that copy comes back. So a
fully deleted record is purged only when all of these hold:

* every one of its N replicas holds exactly that record (same digest) — the
  primary replica asks them all in its anti-entropy pass, so a replica that
  missed the delete (down, partitioned, wiped) blocks the purge until repair
  has given it the tombstone;
* each replica has held that exact record for the grace period (its own
  tombstone index says since when), so writes, read repairs and hinted
  copies still in flight when the last replica got it have long landed;
* no member of the cluster holds an undelivered hint for the key (a hint is
  a possibly older copy waiting for its owner), and no non-replica holds
  another copy (a fallback's or former owner's copy is merged into the
  replicas first, and the same tombstone there is purged with the rest); a
  member that does not answer blocks the purge;
* nobody is joining or leaving (ranges in motion may carry old copies).

Then every replica purges it — each only if its record is still the one
agreed on — together with its hash-tree contribution, in one batch.

The decisions are plain functions of states gathered by the node's repair
service; this module does no network IO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from ringkv.quorum.aae import DIGEST_LEN, Trees, record_digest
from ringkv.quorum.hints import HintStore, hint_key
from ringkv.quorum.tables import Table
from ringkv.storage import HINTS_CF

__all__ = ["TombState", "Candidate", "Verdict", "hint_pending", "local_state", "purge", "due", "decide"]


@dataclass(frozen=True, slots=True)
class TombState:
    """What one member says about one key (``digest`` None: no record there)."""

    digest: Optional[bytes]
    #: The member holds exactly this tombstone, and has for the grace period.
    eligible: bool
    #: The member holds an undelivered hint for the key.
    hinted: bool

    def to_wire(self) -> list:
        return [self.digest, self.eligible, self.hinted]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A tombstone the primary replica proposes to purge."""

    key: bytes
    skey: bytes
    digest: bytes
    replicas: tuple[str, ...]


def hint_pending(hints: HintStore, wire_name: str, key: bytes) -> bool:
    """Whether this node holds an undelivered hint for ``key`` of table ``wire_name``."""
    storage = hints.storage
    for target in hints.pending():
        if storage.get(HINTS_CF, hint_key(target, wire_name, key)) is not None:
            return True
    return False


def local_state(trees: Trees, hints: HintStore, table: Table, key: bytes, now: float, grace: float) -> TombState:
    """This node's :class:`TombState` for ``key``."""
    skey = table.skey(key)
    raw = trees.storage.get(table.cf, skey)
    hinted = hint_pending(hints, table.wire_name, key)
    if raw is None:
        return TombState(None, False, hinted)
    digest, deleted = record_digest(skey, raw)
    eligible = False
    if deleted:
        tomb = trees.tomb(table.cf, skey)
        eligible = tomb is not None and tomb[0] == digest and now - tomb[1] >= grace
    return TombState(digest.to_bytes(DIGEST_LEN, "big"), eligible, hinted)


def purge(trees: Trees, hints: HintStore, table: Table, key: bytes, digest: bytes, now: float, grace: float) -> bool:
    """Purge ``key`` here if it still holds the agreed tombstone and may go; True if purged."""
    state = local_state(trees, hints, table, key, now, grace)
    if state.digest != digest or not state.eligible or state.hinted:
        return False
    skey = table.skey(key)
    raw = trees.storage.get(table.cf, skey)
    if raw is None:  # pragma: no cover - local_state just read it, on the same loop turn
        return False
    trees.delete_record(table.cf, skey, raw)
    return True


def due(trees: Trees, cf: str, now: float, grace: float, after: Optional[bytes], limit: int) -> tuple[list[tuple[bytes, bytes]], Optional[bytes]]:
    """Tombstones of ``cf`` held for the grace period: ``([(skey, digest)], next cursor or None)``.

    Examines at most ``limit`` index entries after ``after``.
    """
    entries = trees.tombs(cf, after, limit)
    out = [(skey, d.to_bytes(DIGEST_LEN, "big")) for skey, d, since in entries if now - since >= grace]
    cursor = entries[-1][0] if len(entries) >= limit else None
    return out, cursor


@dataclass
class Verdict:
    """What a GC round may do with its candidates."""

    #: ``(candidate, members other than this node to purge it on)``.
    purge: list = field(default_factory=list)
    #: ``(candidate, member)``: a non-replica holds another copy; merge it in first.
    absorb: list = field(default_factory=list)


def decide(candidates: Iterable[Candidate], states: dict[str, list[TombState]], me: str) -> Verdict:
    """Which candidates every member's answer allows purging, and on whom.

    ``states[member][i]`` is that member's state for the ``i``-th candidate;
    it must hold every member but ``me`` (one that did not answer blocks
    the whole round, so the caller does not call this at all).

    * a member holding a hint for the key blocks it;
    * every replica must hold the same digest and be eligible;
    * a non-replica holding a copy (a fallback's, a former owner's): the same
      tombstone, held for the grace period, is purged with the rest; any
      other copy blocks the purge and is absorbed (merged into the replicas)
      so a later round can go ahead. A copy left behind could otherwise be
      handed back to the owners after they forgot the tombstone.
    """
    verdict = Verdict()
    for i, c in enumerate(candidates):
        blocked = any(r != me and r not in states for r in c.replicas)
        targets: list[str] = []
        for member, sts in states.items():
            st = sts[i]
            if st.hinted:
                blocked = True
            elif member in c.replicas:
                if st.digest != c.digest or not st.eligible:
                    blocked = True
                targets.append(member)
            elif st.digest is not None:
                if st.digest != c.digest:
                    verdict.absorb.append((c, member))
                    blocked = True
                elif not st.eligible:
                    blocked = True
                else:
                    targets.append(member)
        if not blocked:
            verdict.purge.append((c, tuple(targets)))
    return verdict
