"""Tokens: validating members' token lists, and choosing tokens for a joining node.

Random tokens leave the most and least loaded owners about 1.5x apart even
with 128 vnodes, so a joining node instead *takes* its share from the members
that own the most:

1. Primary ownership is met by construction. The newcomer should own
   ``1/(k+1)`` of the ring. Water-filling decides how much each donor gives
   (the most loaded give, down to a common level, which also repairs a ring
   left uneven by a removal), and each donor's amount is cut into pieces of
   about ``1/((k+1)*vnodes)``. A new token placed ``x`` after the start of a
   donor's range takes exactly ``x`` from that donor, so the amounts are met
   exactly, not on average (short by a fraction of a percent only when a
   donor's ranges are too small to hold its pieces).
2. *Which* donor ranges to split is free, and that choice decides replicated
   ownership (the load with N copies). Each piece goes to the candidate range,
   out of a random sample of the donor's large-enough ranges, whose split moves
   every member's N-replica share closest to its target (computed exactly
   from the replica sets around the split, for every N from 2 to
   ``replicas``). Random sampling keeps members statistically alike: evenly
   spaced or always-the-largest choices make some members' tokens more
   regular than others', and regular members end up replicas of more keys.

The first node of an empty ring gets random tokens for the same reason.

Tokens belong to a member id only by the mapping that holds them, so replacing
a node is giving its token list to another id; nothing here depends on ids
beyond ordering.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping

from ringkv.errors import BadRequest, WrongType
from ringkv.hashing import RING_SIZE
from ringkv.ring.ranges import check_position

__all__ = ["allocate_tokens", "normalize_members", "MAX_VNODES"]

#: Upper bound on tokens per member: far above any sane setting, low enough
#: that a typo cannot make a join allocate millions of tokens.
MAX_VNODES = 4096

#: Candidate ranges scored per new token; more is slower and barely better.
_SAMPLE = 12
#: A range is split with a full piece only if it is this many times the piece,
#: so what the donor keeps is never a sliver (unless nothing larger exists).
_ROOMY = 1.5


def normalize_members(members: Mapping[str, Iterable[int]]) -> dict[str, tuple[int, ...]]:
    """Validated copy of a membership: str ids -> sorted, de-duplicated tokens."""
    if not isinstance(members, Mapping):
        raise WrongType(f"members must be a mapping of node id -> tokens, not {type(members).__name__}")
    out: dict[str, tuple[int, ...]] = {}
    for node_id, tokens in members.items():
        if not isinstance(node_id, str):
            raise WrongType(f"node id must be a str, not {type(node_id).__name__}")
        if not node_id:
            raise BadRequest("node id must not be empty")
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
            raise WrongType(f"tokens of {node_id!r} must be a sequence of ints")
        out[node_id] = tuple(sorted({check_position(t) for t in tokens}))
    return out


def _check_count(value: object, what: str, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongType(f"{what} must be an int, not {type(value).__name__}")
    if not 1 <= value <= upper:
        raise BadRequest(f"{what} must be between 1 and {upper}, got {value}")
    return int(value)


def allocate_tokens(
    existing: Mapping[str, Iterable[int]],
    vnodes: int = 128,
    rng: random.Random | None = None,
    *,
    replicas: int = 3,
) -> list[int]:
    """Choose ``vnodes`` new tokens for a node joining a ring of ``existing`` members.

    Returns sorted tokens in ``[0, 2**64)``, distinct from each other and from
    every existing token. The newcomer gets ``1/(k+1)`` of the ring as first
    replica, taken from the most loaded members, so a balanced ring stays
    balanced. ``replicas`` is the replication factor whose N-copy load is also
    evened out (every N from 2 to it). ``rng`` makes the choice reproducible.
    """
    members = normalize_members(existing)
    vnodes = _check_count(vnodes, "vnodes", MAX_VNODES)
    replicas = _check_count(replicas, "replicas", 64)
    rng = rng if rng is not None else random.Random()
    positions: list[int] = []
    owners: list[int] = []
    ids = sorted(node for node, tokens in members.items() if tokens)
    for token, owner in sorted((t, i) for i, node in enumerate(ids) for t in members[node]):
        if positions and positions[-1] == token:
            continue  # an equal token owns nothing: the smaller id comes first
        positions.append(token)
        owners.append(owner)
    if not positions:
        return _first_tokens(vnodes, rng)
    return _Join(positions, owners, len(ids), vnodes, replicas, rng).run()


def _first_tokens(vnodes: int, rng: random.Random) -> list[int]:
    tokens: set[int] = set()
    while len(tokens) < vnodes:
        tokens.add(rng.randrange(RING_SIZE))
    return sorted(tokens)


class _Join:
    """One allocation: the ring as parallel position/owner lists, mutated as tokens go in."""

    def __init__(
        self,
        positions: list[int],
        owners: list[int],
        nmembers: int,
        vnodes: int,
        replicas: int,
        rng: random.Random,
    ) -> None:
        self.pos = positions
        self.own = owners
        self.new = nmembers  # owner index of the joining node
        self.vnodes = vnodes
        self.rng = rng
        self.owned = [0] * nmembers
        for j, owner in enumerate(owners):
            self.owned[owner] += self._size(j)
        self.members = sum(1 for share in self.owned if share)
        # Replication factors whose load the choice of ranges can still change.
        self.factors = [n for n in range(2, replicas + 1) if n <= self.members]
        self.excess = {n: self._excess(n) for n in self.factors}

    def _size(self, j: int) -> int:
        return (self.pos[j] - self.pos[j - 1]) % RING_SIZE or RING_SIZE

    def _replicas(self, j: int, n: int) -> list[int]:
        own, count = self.own, len(self.own)
        seen: list[int] = []
        for step in range(count):
            owner = own[(j + step) % count]
            if owner not in seen:
                seen.append(owner)
                if len(seen) == n:
                    break
        return seen

    def _excess(self, n: int) -> list[float]:
        """Each member's n-replica share minus its target after the join, as ring fractions."""
        load = [0] * (self.new + 1)
        for j in range(len(self.pos)):
            size = self._size(j)
            for owner in self._replicas(j, n):
                load[owner] += size
        target = n / (self.members + 1)
        return [share / RING_SIZE - target for share in load[:-1]] + [-target]

    def _plan(self) -> tuple[dict[int, int], dict[int, int]]:
        """How much each donor gives (exactly) and in how many pieces."""
        share = RING_SIZE // (self.members + 1)
        donors = sorted((i for i, s in enumerate(self.owned) if s), key=lambda i: -self.owned[i])
        donors = donors[: self.vnodes]
        total = 0
        level = 0.0
        for count, donor in enumerate(donors, 1):
            total += self.owned[donor]
            level = (total - share) / count
            if count == len(donors) or self.owned[donors[count]] <= level:
                donors = donors[:count]
                break
        gives = {d: max(0, int(self.owned[d] - level)) for d in donors}
        gives[donors[0]] += share - sum(gives.values())  # rounding: the sum is exact
        # Pieces of about equal size, but enough of them that each donor's
        # largest ranges can hold its amount without being cut to slivers.
        ranges: dict[int, list[int]] = {d: [] for d in donors}
        for j, owner in enumerate(self.own):
            if owner in ranges:
                ranges[owner].append(self._size(j))
        room = {}
        for d in donors:
            room[d] = [0]
            for size in sorted(ranges[d], reverse=True):
                room[d].append(room[d][-1] + size - size // 8 - 1)
        pieces = dict.fromkeys(donors, 1)

        def need(d: int) -> tuple[bool, float]:
            short = pieces[d] < len(ranges[d]) and room[d][pieces[d]] < gives[d]
            return short, gives[d] / pieces[d]

        for _ in range(self.vnodes - len(donors)):
            pieces[max(donors, key=need)] += 1
        return gives, pieces

    def run(self) -> list[int]:
        gives, pieces = self._plan()
        donor_tokens = {d: [] for d in gives}
        for j, owner in enumerate(self.own):
            if owner in donor_tokens:
                donor_tokens[owner].append(self.pos[j])
        order: list[int] = []
        left_pieces = dict(pieces)
        while len(order) < self.vnodes:
            for donor in sorted(gives, key=lambda d: (-pieces[d], d)):
                if left_pieces[donor]:
                    order.append(donor)
                    left_pieces[donor] -= 1
        left = dict(gives)
        left_pieces = dict(pieces)
        placed: list[tuple[int, int]] = []  # (token, donor)
        for donor in order:
            want = left[donor] // left_pieces[donor]
            left_pieces[donor] -= 1
            j, take, changes = self._choose(donor_tokens[donor], want)
            token = (self.pos[j] - self._size(j) + take) % RING_SIZE
            for n, delta in changes.items():
                excess = self.excess[n]
                for owner, change in delta.items():
                    excess[owner] += change / RING_SIZE
            if self.own[j] == donor:
                left[donor] -= take
            at = j if token < self.pos[j] else len(self.pos)  # past 2**64 - 1: goes last
            self.pos.insert(at, token)
            self.own.insert(at, self.new)
            placed.append((token, donor))
        self._settle(left, placed)
        return sorted(self.pos[j] for j in range(len(self.pos)) if self.own[j] == self.new)

    def _choose(self, donor_tokens: list[int], want: int) -> tuple[int, int, dict[int, dict[int, int]]]:
        """The range to split, how much to take from it, and the load changes per factor."""
        sized = []
        for token in donor_tokens:
            j = bisect.bisect_left(self.pos, token)
            size = self._size(j)
            if size >= 2:
                sized.append((size, j))
        candidates = [(size, j) for size, j in sized if size >= _ROOMY * want]
        if len(candidates) > _SAMPLE:
            candidates = self.rng.sample(candidates, _SAMPLE)
        if not candidates:  # nothing large enough: the largest, leaving the donor 1/8 of each
            candidates = sorted(sized, reverse=True)[:3]
        if not candidates:  # the donor has only 1-wide ranges: split the largest range anywhere
            j = max(range(len(self.pos)), key=self._size)
            candidates = [(self._size(j), j)]
        best: tuple[float, int, int, dict[int, dict[int, int]]] | None = None
        for size, j in candidates:
            take = want if size >= _ROOMY * want else min(want, size - size // 8 - 1)
            take = min(max(take, 1), size - 1)
            changes = {n: self._delta(j, take, n) for n in self.factors}
            score = 0.0
            for n, delta in changes.items():
                excess = self.excess[n]
                for owner, change in delta.items():
                    after = excess[owner] + change / RING_SIZE
                    score += after * after - excess[owner] * excess[owner]
            if best is None or score < best[0]:
                best = (score, j, take, changes)
        assert best is not None
        return best[1], best[2], best[3]

    def _delta(self, j: int, take: int, n: int) -> dict[int, int]:
        """Exact change of n-replica load if the new node's token splits range ``j``, taking ``take``."""
        new, own, count = self.new, self.own, len(self.own)
        change: dict[int, int] = {}
        old = self._replicas(j, n)
        if new not in old:  # the taken part: the new node first, the old n-th replica out
            change[new] = take
            change[old[-1]] = change.get(old[-1], 0) - take
        # Ranges before it whose walk reaches the new token before n distinct owners.
        seen: set[int] = set()
        for back in range(1, count):
            i = (j - back) % count
            owner = own[i]
            if owner == new:
                break
            seen.add(owner)
            if len(seen) >= n:
                break
            old = self._replicas(i, n)
            if new not in old:
                size = self._size(i)
                change[new] = change.get(new, 0) + size
                change[old[-1]] = change.get(old[-1], 0) - size
        return change

    def _settle(self, left: dict[int, int], placed: list[tuple[int, int]]) -> None:
        """Hand over what capped pieces could not take, by moving new tokens forward."""
        for token, donor in sorted(placed, key=lambda p: p[1]):
            if left.get(donor, 0) <= 0:
                continue
            j = bisect.bisect_left(self.pos, token)
            after = (j + 1) % len(self.pos)
            if self.own[after] != donor:
                continue
            room = (self.pos[after] - token) % RING_SIZE - 1
            move = min(left[donor], room)
            if move > 0:
                del self.pos[j], self.own[j]
                moved = (token + move) % RING_SIZE  # still before the donor's token
                k = bisect.bisect_left(self.pos, moved)
                self.pos.insert(k, moved)
                self.own.insert(k, self.new)
                left[donor] -= move
