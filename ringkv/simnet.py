"""A deterministic network simulator for sans-IO cores.

Runs many cores in one process on a virtual clock: no sockets, no sleeps.
Anything with the :class:`Core` shape can be driven (gossip nodes today,
quorum cores later). Effects a core returns that look like a send (an
``addr`` attribute and a :class:`~ringkv.wire.Message` ``msg``) travel through
the simulated network; every other effect goes to the ``on_effect`` hook.

The network delays each message independently (so messages reorder), drops
with a probability, duplicates with a probability, and can be partitioned.
With ``codec=True`` every message is encoded with :func:`ringkv.wire.encode_body`
and msgpack and decoded again on delivery, so the real codec and validation
run; a body that fails to decode counts in ``stats["undecodable"]``.

All randomness comes from one seeded :class:`random.Random`: the same seed,
cores and calls replay the same run exactly.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from typing import Any, Callable, Iterable, Protocol, Sequence

import msgpack

from ringkv.errors import ProtocolError
from ringkv.wire import Message, decode_body, encode_body

__all__ = ["Core", "SimNet", "uniform_delay"]


class Core(Protocol):
    """What the simulator drives: a sans-IO core."""

    def tick(self, now: float) -> Iterable[Any]: ...

    def receive(self, src: str, msg: Message, now: float) -> Iterable[Any]: ...

    def next_deadline(self) -> float: ...


Delay = Callable[[random.Random], float]


def uniform_delay(lo: float = 0.0005, hi: float = 0.005) -> Delay:
    """One-way delays drawn uniformly from ``[lo, hi]`` seconds."""
    return lambda rng: rng.uniform(lo, hi)


_DELIVER, _TICK = 0, 1
_MAX_SAME_TIME_TICKS = 10_000


class SimNet:
    """Virtual clock + message queue + fault injection for a set of cores."""

    def __init__(
        self,
        seed: int = 0,
        *,
        delay: Delay | None = None,
        drop: float = 0.0,
        duplicate: float = 0.0,
        codec: bool = True,
        on_effect: Callable[[str, Any, float], None] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.delay: Delay = delay or uniform_delay()
        self.drop = drop
        self.duplicate = duplicate
        self.codec = codec
        self.on_effect = on_effect
        self.cores: dict[str, Core] = {}
        self.stats: Counter = Counter()
        self._up: set[str] = set()
        self._groups: dict[str, int] = {}
        self._heap: list[tuple] = []
        self._n = 0
        self._tick_at: dict[str, float] = {}
        self._gen: dict[str, int] = {}
        self._same: tuple[str, float, int] = ("", -1.0, 0)

    # -- topology and faults -----------------------------------------------

    def add(self, addr: str, core: Core) -> None:
        """Attach a running core at ``addr``."""
        self.cores[addr] = core
        self._up.add(addr)
        self._gen[addr] = self._gen.get(addr, 0) + 1
        self._tick_at[addr] = math.inf
        self._schedule(addr)

    def crash(self, addr: str) -> None:
        """The node stops: no ticks, messages to it are lost."""
        self._up.discard(addr)
        self._gen[addr] = self._gen.get(addr, 0) + 1
        self._tick_at[addr] = math.inf

    def restart(self, addr: str, core: Core | None = None) -> None:
        """Bring a crashed node back, with a fresh ``core`` (a new process) or the old one."""
        self.add(addr, core if core is not None else self.cores[addr])

    def is_up(self, addr: str) -> bool:
        return addr in self._up

    def partition(self, *groups: Sequence[str]) -> None:
        """Nodes in different groups cannot reach each other; unlisted nodes reach all."""
        self._groups = {a: i for i, g in enumerate(groups) for a in g}

    def heal(self) -> None:
        self._groups = {}

    def reachable(self, src: str, dst: str) -> bool:
        g1, g2 = self._groups.get(src), self._groups.get(dst)
        return g1 is None or g2 is None or g1 == g2

    # -- running -------------------------------------------------------------

    def send(self, src: str, dst: str, msg: Message) -> None:
        """Inject a message as if ``src`` had sent it."""
        self.stats["sent"] += 1
        if not self.reachable(src, dst):
            self.stats["partitioned"] += 1
            return
        if self.drop and self.rng.random() < self.drop:
            self.stats["dropped"] += 1
            return
        payload: Any = msg
        if self.codec:
            payload = msgpack.packb(list(encode_body(msg)))
            self.stats["bytes"] += len(payload)
        self._push(self.now + self.delay(self.rng), _DELIVER, (src, dst, payload))
        if self.duplicate and self.rng.random() < self.duplicate:
            self.stats["duplicated"] += 1
            self._push(self.now + self.delay(self.rng), _DELIVER, (src, dst, payload))

    def apply(self, addr: str, effects: Iterable[Any]) -> None:
        """Run effects a core returned outside tick/receive (an owner action at ``self.now``)."""
        self._effects(addr, effects)

    def step(self) -> bool:
        """Process the next event; False when nothing is left."""
        if not self._heap:
            return False
        t, _, kind, data = heapq.heappop(self._heap)
        self.now = max(self.now, t)
        if kind == _TICK:
            addr, gen = data
            if gen != self._gen.get(addr) or addr not in self._up:
                return True
            self._tick_at[addr] = math.inf
            self._guard(addr)
            self._effects(addr, self.cores[addr].tick(self.now))
        else:
            src, dst, payload = data
            if dst not in self._up:
                self.stats["lost_down"] += 1
                return True
            if not self.reachable(src, dst):
                self.stats["partitioned"] += 1
                return True
            msg = self._decode(payload)
            if msg is None:
                return True
            self.stats["delivered"] += 1
            self._effects(dst, self.cores[dst].receive(src, msg, self.now))
        return True

    def run_until(self, t: float) -> None:
        """Process every event up to virtual time ``t``; the clock ends at ``t``."""
        while self._heap and self._heap[0][0] <= t:
            self.step()
        self.now = max(self.now, t)

    def run_for(self, dt: float) -> None:
        self.run_until(self.now + dt)

    def run_until_true(self, pred: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
        """Run until ``pred()`` holds (checked every ``every`` s) or ``timeout`` passes."""
        end = self.now + timeout
        while self.now < end:
            if pred():
                return True
            self.run_until(min(end, self.now + every))
        return pred()

    # -- internals --------------------------------------------------------------

    def _push(self, t: float, kind: int, data: tuple) -> None:
        self._n += 1
        heapq.heappush(self._heap, (t, self._n, kind, data))

    def _schedule(self, addr: str) -> None:
        d = max(self.cores[addr].next_deadline(), self.now)
        if d < self._tick_at[addr]:
            self._tick_at[addr] = d
            self._gen[addr] += 1
            self._push(d, _TICK, (addr, self._gen[addr]))

    def _guard(self, addr: str) -> None:
        a, t, n = self._same
        n = n + 1 if (a, t) == (addr, self.now) else 0
        self._same = (addr, self.now, n)
        if n > _MAX_SAME_TIME_TICKS:
            raise RuntimeError(f"core at {addr} keeps asking for a tick at t={self.now}")

    def _decode(self, payload: Any) -> Message | None:
        if not self.codec:
            return payload
        try:
            raw = msgpack.unpackb(payload)
            if not isinstance(raw, list) or len(raw) != 2:
                raise ProtocolError("bad envelope")
            return decode_body(raw[0], raw[1])
        except (ProtocolError, ValueError, msgpack.UnpackException) as exc:
            self.stats["undecodable"] += 1
            self.stats[f"undecodable:{type(exc).__name__}"] += 1
            return None

    def _effects(self, addr: str, effects: Iterable[Any]) -> None:
        for eff in effects:
            msg = getattr(eff, "msg", None)
            if isinstance(msg, Message) and isinstance(getattr(eff, "addr", None), str):
                self.send(addr, eff.addr, msg)
            elif self.on_effect is not None:
                self.on_effect(addr, eff, self.now)
        if addr in self._up:
            self._schedule(addr)
