"""The consistent-hash ring: who holds a key, and which ranges a node holds.

A :class:`Ring` is a value computed from the membership view (node id ->
tokens) and nothing else, so every node with the same view places every key
identically. Tokens are sorted, equal tokens ordered by node id. It is rebuilt
on each membership change rather than mutated, which is what lets it cache
preference lists without invalidation: the cache dies with the ring.

Placement: a key at ring position ``h = hash64(key)`` belongs to the first
token ``>= h`` (wrapping past ``2**64 - 1`` to the lowest token); its replicas
are the first ``n`` *distinct* members walking clockwise from there. So a
token ``t`` whose predecessor is ``p`` primarily owns the range ``(p, t]``
(see :mod:`ringkv.ring.ranges` for the range conventions).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping


from ringkv.errors import BadRequest, NotFound, WrongType
from ringkv.hashing import RING_SIZE, hash64
from ringkv.ring.ranges import TokenRange, check_position, split_wrapping
from ringkv.ring.tokens import normalize_members

__all__ = ["Ring"]


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise WrongType(f"n must be an int, not {type(n).__name__}")
    if n < 1:
        raise BadRequest(f"n must be at least 1, got {n}")
    return n


def _position(key_or_hash: object) -> int:
    if isinstance(key_or_hash, bytes):
        return hash64(key_or_hash)
    if isinstance(key_or_hash, int) and not isinstance(key_or_hash, bool):
        return check_position(key_or_hash, "ring position")
    raise WrongType(f"expected a bytes key or an int ring position, not {type(key_or_hash).__name__}")


class Ring:
    """Immutable ring over ``members`` (node id -> tokens in ``[0, 2**64)``).

    A member with no tokens is listed but owns nothing. Lookups are a bisect
    plus a bounded cache of the distinct-member walk per (token index, n).
    """

    __slots__ = ("_members", "_ids", "_tokens", "_owners", "_placed", "_cache", "_cache_size", "_key", "_segments", "_digest")

    def __init__(self, members: Mapping[str, Iterable[int]] | None = None, *, cache_size: int | None = None) -> None:
        self._members = normalize_members({} if members is None else members)
        self._ids = tuple(sorted(self._members))
        entries = sorted((t, node) for node, tokens in self._members.items() for t in tokens)
        self._tokens = [t for t, _ in entries]
        self._owners = [node for _, node in entries]
        self._placed = sum(1 for tokens in self._members.values() if tokens)
        if cache_size is None:
            cache_size = max(1024, 4 * len(entries))
        elif isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise BadRequest(f"cache_size must be a positive int, got {cache_size!r}")
        #: ``n * tokens + index -> walk``: a plain dict, emptied when full. Every get and put
        #: looks here, and an LRU's bookkeeping (and the lock it needs) cost more than
        #: an occasional refill; single dict operations are atomic between threads.
        self._cache: dict[int, tuple[str, ...]] = {}
        self._cache_size = cache_size
        self._key = tuple(sorted(self._members.items()))
        self._segments: dict[int, list[tuple[int, int, tuple[str, ...]]]] = {}
        self._digest: bytes | None = None

    # -- the membership ------------------------------------------------------

    @property
    def members(self) -> tuple[str, ...]:
        """Member ids, sorted."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._members

    def tokens_of(self, node_id: str) -> tuple[int, ...]:
        """The sorted tokens of ``node_id`` (NotFound if it is not a member)."""
        try:
            return self._members[node_id]
        except (KeyError, TypeError):
            raise NotFound(f"{node_id!r} is not a member of the ring") from None

    def to_dict(self) -> dict[str, list[int]]:
        """The membership this ring was built from (a fresh, mutable copy)."""
        return {node: list(tokens) for node, tokens in self._members.items()}

    def with_member(self, node_id: str, tokens: Iterable[int]) -> Ring:
        """A new ring where ``node_id`` holds ``tokens`` (added, or its tokens replaced)."""
        members = self.to_dict()
        members[node_id] = list(tokens)
        return Ring(members)

    def without(self, node_id: str) -> Ring:
        """A new ring without ``node_id``; its ranges fall to the next members clockwise."""
        members = self.to_dict()
        members.pop(node_id, None)
        return Ring(members)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    @property
    def digest(self) -> bytes:
        """16 bytes naming this membership: two processes hold equal rings exactly when their digests are equal.

        A client that places keys itself sends it along, so a node can tell
        it is placing them with a different ring than its own.
        """
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            for node, tokens in self._key:
                h.update(len(node).to_bytes(4, "big") + node.encode() + len(tokens).to_bytes(4, "big"))
                h.update(b"".join(t.to_bytes(8, "big") for t in tokens))
            self._digest = h.digest()
        return self._digest

    def __repr__(self) -> str:
        return f"<Ring members={len(self._ids)} tokens={len(self._tokens)}>"

    # -- placement -----------------------------------------------------------

    def preference_list(self, key: bytes, n: int) -> list[str]:
        """The first ``n`` distinct members clockwise from ``hash64(key)`` (fewer if the ring has fewer)."""
        if not isinstance(key, bytes):
            raise WrongType(f"key must be bytes, not {type(key).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            _check_n(n)
        tokens = self._tokens
        if not tokens:
            return []
        i = bisect_left(tokens, hash64(key))
        return list(self._walk_from(i if i < len(tokens) else 0, n))

    def preference_list_for_hash(self, h: int, n: int) -> list[str]:
        """:meth:`preference_list` for a ring position instead of a key."""
        h = check_position(h, "ring position")
        n = _check_n(n)
        tokens = self._tokens
        if not tokens:
            return []
        i = bisect_left(tokens, h)
        return list(self._walk_from(i if i < len(tokens) else 0, n))

    def successors(self, key: bytes) -> tuple[str, ...]:
        """:meth:`walk` as one tuple (equal for every key in one ring arc: callers may key caches on it)."""
        tokens = self._tokens
        if not tokens:
            return ()
        i = bisect_left(tokens, _position(key))
        return self._walk_from(i if i < len(tokens) else 0, self._placed)

    def walk(self, key_or_hash: bytes | int) -> Iterator[str]:
        """Every placed member once, clockwise from the key: replicas first, then fallbacks.

        The first ``n`` members are ``preference_list(key, n)``; the rest, in
        order, are the members a sloppy quorum falls back to.
        """
        h = _position(key_or_hash)
        tokens = self._tokens
        if not tokens:
            return iter(())
        i = bisect_left(tokens, h)
        return iter(self._walk_from(i if i < len(tokens) else 0, self._placed))

    def _walk_from(self, i: int, n: int) -> tuple[str, ...]:
        """Distinct members from token index ``i`` on, at most ``n`` (cached)."""
        n = min(n, self._placed)
        key = n * len(self._tokens) + i
        cache = self._cache
        found = cache.get(key)
        if found is not None:
            return found
        owners, count = self._owners, len(self._owners)
        seen: list[str] = []
        for step in range(count):
            owner = owners[(i + step) % count]
            if owner not in seen:
                seen.append(owner)
                if len(seen) == n:
                    break
        found = tuple(seen)
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[key] = found
        return found

    # -- ownership and ranges ------------------------------------------------

    def _range_starts(self) -> list[tuple[int, int]]:
        """``(index of the first token at each distinct position, previous distinct position)``."""
        tokens = self._tokens
        out: list[tuple[int, int]] = []
        for i, t in enumerate(tokens):
            if i and tokens[i - 1] == t:
                continue  # an equal token owns nothing: the first (smallest id) takes the range
            out.append((i, t))
        return [(i, out[k - 1][1]) for k, (i, _) in enumerate(out)]

    def ranges(self, n: int = 1) -> list[tuple[TokenRange, tuple[str, ...]]]:
        """Every range between consecutive distinct tokens, with its ``n`` replicas.

        One entry per distinct token position, ordered by end token; the first
        range wraps (it starts at the highest token). A ring with one distinct
        position has a single whole-ring range ``(t, t]``. The ranges
        partition the ring.
        """
        n = _check_n(n)
        tokens = self._tokens
        return [(TokenRange(prev, tokens[i]), self._walk_from(i, n)) for i, prev in self._range_starts()]

    def segments(self, n: int) -> list[tuple[int, int, tuple[str, ...]]]:
        """The ring as sorted, non-wrapping ``[lo, hi)`` pieces, each with the ``n`` replicas of every key in it.

        Neighbouring pieces held by the same set of members are one piece, so
        a scan of the whole key space asks few replica sets (with N equal to
        the number of members: one). ``hi`` may be ``2**64``.
        """
        n = _check_n(n)
        found = self._segments.get(n)
        if found is not None:
            return found
        pieces = sorted((lo, hi, reps) for rng, reps in self.ranges(n) for lo, hi in split_wrapping(rng.start, rng.end)) if self._tokens else []
        out: list[tuple[int, int, tuple[str, ...]]] = []
        for lo, hi, reps in pieces:
            if out and out[-1][1] == lo and set(out[-1][2]) == set(reps):
                out[-1] = (out[-1][0], hi, out[-1][2])
            else:
                out.append((lo, hi, reps))
        self._segments[n] = out
        return out

    def ownership(self, n: int = 1) -> dict[str, float]:
        """Fraction of the ring each member replicates among ``n`` copies.

        With ``n = 1`` this is primary ownership and the values sum to 1.0;
        in general they sum to ``min(n, members with tokens)``.
        """
        n = _check_n(n)
        share = dict.fromkeys(self._ids, 0)
        for span, owners in self.ranges(n):
            for owner in owners:
                share[owner] += span.size
        return {node: amount / RING_SIZE for node, amount in share.items()}

    def replica_ranges(self, node_id: str, n: int) -> list[TokenRange]:
        """The ranges whose keys ``node_id`` holds as one of ``n`` replicas.

        Ring ranges ``(start, end]`` (start exclusive, end inclusive, wrapping
        when ``start > end``; ``start == end`` is the whole ring), with
        adjacent ranges merged, ordered by end token. A key ``k`` is in one of
        them exactly when ``node_id in preference_list(k, n)``. A node that is
        not a member, or has no tokens, gets ``[]``. Use
        :meth:`TokenRange.pieces` for storage key intervals.
        """
        n = _check_n(n)
        if not isinstance(node_id, str):
            raise WrongType(f"node id must be a str, not {type(node_id).__name__}")
        spans = self.ranges(n)
        held = [node_id in owners for _, owners in spans]
        if not any(held):
            return []
        if all(held):
            return [TokenRange(spans[0][0].start, spans[0][0].start)]
        # Start just after a range it does not hold, so no run is cut by the wrap.
        first = held.index(False) + 1
        merged: list[TokenRange] = []
        run_start: int | None = None
        count = len(spans)
        for step in range(count):
            k = (first + step) % count
            span = spans[k][0]
            if held[k]:
                if run_start is None:
                    run_start = span.start
                if not held[(k + 1) % count]:
                    merged.append(TokenRange(run_start, span.end))
                    run_start = None
        return sorted(merged, key=lambda r: r.end)
