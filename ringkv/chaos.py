"""Proof under faults: a recorded workload, seeded fault schedules, and the checker.

The same pieces run over the simulator (:class:`~ringkv.simcluster.SimCluster`
on virtual time, where a failing seed replays exactly) and over real
``ringkv serve`` processes (:class:`~ringkv.faults.ProcessCluster`):

* **workload** — clients read a key, then write a unique value with that
  read's context (or, sometimes, with none) or delete with it, recording
  every operation and what its read saw in a :class:`~ringkv.history.History`;
  feed clients append unique payloads and remove some of their entries;
* **nemesis** — a seeded schedule of one fault *kind* (:data:`KINDS`):
  partitions (majority/minority, a bridge node, one node isolated), message
  loss, duplication, reordering, slow links, crashes and restarts, paused
  processes;
* **settle** — heal everything, restart every node, wait until hints are
  delivered, run anti-entropy on every node (or, without it, read every key
  and feed at R=N);
* **check** — read every replica's own copy (``kv.local_get``,
  ``feed.replica_scan``): replicas must agree, no acknowledged put may be
  lost, nothing an acknowledged write superseded may come back, every
  acknowledged feed append must be present exactly once and every replica
  must hold the feed in the same order. :meth:`Outcome.report` prints the
  offending operation, every replica's version and how to replay the run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

from ringkv.codec import decode_record
from ringkv.errors import BadRequest, RingKVError
from ringkv.feeds.ids import format_id
from ringkv.feeds.messages import FeedReplicaScan
from ringkv.feeds.store import entry_data
from ringkv.history import FAILED, OK, UNKNOWN, History, Op, Verdict
from ringkv.node_messages import ClusterView, NodeStats
from ringkv.quorum.messages import KvGet, LocalGet
from ringkv.quorum.tables import split_feed_key
from ringkv.ring import Ring

__all__ = [
    "KINDS",
    "PROCESS_KINDS",
    "SEQUENTIAL",
    "SIM_KINDS",
    "FeedLog",
    "Outcome",
    "Recorder",
    "Workload",
    "process_scenario",
    "run_sim",
    "seeds_from_env",
    "sim_scenario",
]

#: Fault kinds and the nemesis actions each one draws from.
KINDS: dict[str, tuple[str, ...]] = {
    "partition": ("split", "heal"),
    "bridge": ("bridge", "heal"),
    "isolate": ("isolate", "heal"),
    "drop": ("loss", "heal"),
    "duplicate": ("duplicate", "heal"),
    "reorder": ("reorder", "heal"),
    "crash": ("crash", "restart"),
    "pause": ("pause", "resume"),
    "slow": ("slow", "heal"),
    # the schedule of the first simulation tests
    "classic": ("split", "heal", "crash", "restart", "loss"),
    "mixed": ("split", "bridge", "isolate", "heal", "loss", "duplicate", "reorder", "crash", "restart"),
    "process-mixed": ("split", "bridge", "isolate", "heal", "slow", "loss", "crash", "restart", "pause", "resume"),
    # every fault once, in this order (the short real-process test)
    "tour": ("crash", "restart", "pause", "resume", "split", "heal", "bridge", "heal", "isolate", "heal",
             "slow", "heal", "loss", "heal", "crash", "pause", "resume", "restart"),
}
#: Kinds whose actions are taken in order, not drawn at random.
SEQUENTIAL = frozenset({"tour"})
SIM_KINDS = ("partition", "bridge", "isolate", "drop", "duplicate", "reorder", "crash", "mixed")
PROCESS_KINDS = ("crash", "pause", "partition", "bridge", "slow", "process-mixed")
#: At most this many nodes down or paused at once (N=3 keys keep a quorum somewhere).
MAX_DOWN = 2


def seeds_from_env(default_count: int) -> list[int]:
    """``RINGKV_SIM_SEEDS=3,7`` replays those seeds; else ``RINGKV_CHAOS_SEEDS`` (a count) seeds from 1."""
    listed = os.environ.get("RINGKV_SIM_SEEDS")
    if listed:
        return [int(s) for s in listed.split(",") if s.strip()]
    return list(range(1, int(os.environ.get("RINGKV_CHAOS_SEEDS", default_count)) + 1))


# -- workload ----------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What the clients do."""

    keys: tuple[bytes, ...] = tuple(b"key%d" % i for i in range(8))
    feeds: tuple[bytes, ...] = (b"feed0",)
    keyspace: str = "default"
    #: Replicas per key of ``keyspace`` (the check reads that many copies).
    n: int = 3
    kv_clients: int = 3
    feed_clients: int = 1
    #: Operation mix of a kv client: a read, then one of these.
    mix: tuple[tuple[str, int], ...] = (("put", 6), ("blind_put", 1), ("delete", 1), ("get", 2))
    #: Share of a feed client's operations that remove one of its entries.
    remove_share: float = 0.15
    #: Operations per client at most (None: until the time is up).
    max_ops: int | None = None
    #: Prefix of every written value (scenarios sharing a cluster stay apart).
    tag: str = ""
    #: Client request timeout, seconds.
    timeout: float = 2.0
    #: Seconds a client waits between two operations (bounds the load).
    pause: float = 0.02
    #: Most siblings one key may end with. Every write carries the context of
    #: a read, so siblings only pile up when reads keep missing acknowledged
    #: writes; more than this is reported as a failure.
    max_siblings: int = 8


class FeedLog:
    """Feed appends and removes and their outcomes."""

    def __init__(self) -> None:
        self.ops: list[dict] = []

    def invoke(self, kind: str, feed: bytes, payload: bytes | None = None, entry_id: str | None = None, client: int = 0) -> dict:
        op = {"kind": kind, "feed": feed, "payload": payload, "entry_id": entry_id, "outcome": UNKNOWN, "error": "", "client": client}
        self.ops.append(op)
        return op

    def check(self, views: dict[bytes, list[tuple[str, bytes | None]]]) -> dict:
        """Judge the converged feeds: ``views[feed]`` is ``[(entry id, payload or None if removed)]``."""
        out: dict = {"attempted": 0, "acknowledged": 0, "failed": 0, "unknown": 0, "lost": [], "resurrected": [], "duplicated": [], "phantom": []}
        maybe_removed = {op["entry_id"] for op in self.ops if op["kind"] == "remove" and op["outcome"] != FAILED}
        removed = {op["entry_id"] for op in self.ops if op["kind"] == "remove" and op["outcome"] == OK}
        known = {op["payload"] for op in self.ops if op["kind"] == "append"}
        for op in self.ops:
            out["attempted"] += 1
            out[{OK: "acknowledged", FAILED: "failed"}.get(op["outcome"], "unknown")] += 1
        for feed, entries in views.items():
            live = [(eid, p) for eid, p in entries if p is not None]
            count: dict[bytes, int] = defaultdict(int)
            for eid, p in live:
                count[p] += 1
                if eid in removed:
                    out["resurrected"].append((feed, eid, p))
                if p not in known:
                    out["phantom"].append((feed, eid, p))
            out["duplicated"] += [(feed, p, n) for p, n in count.items() if n > 1]
            present = dict(live)
            out["lost"] += [
                op for op in self.ops
                if op["kind"] == "append" and op["feed"] == feed and op["outcome"] == OK
                and op["entry_id"] not in maybe_removed and present.get(op["entry_id"]) != op["payload"]
            ]
        return out


class Recorder:
    """The workload's record: kv History, feed log, values written per key."""

    def __init__(self) -> None:
        self.history = History()
        self.feeds = FeedLog()
        self._written: dict[bytes, set] = defaultdict(set)

    def invoke(self, kind: str, key: bytes, value: bytes | None, seen, client: int) -> Op:
        if value is not None:
            self._written[key].add(value)
        return self.history.invoke(kind, key, value, seen, client=client)

    def complete(self, op: Op, outcome: str, error: str = "", *, blind: bool = False) -> None:
        if blind:
            # a write without context supersedes whatever its coordinator held:
            # at most every value written to the key before it completed
            op.maybe_seen = frozenset(self._written[op.key] - {op.value})
        self.history.complete(op, outcome, error)


async def kv_worker(ci: int, client, wl: Workload, rec: Recorder, rng: random.Random, stop_at: float) -> None:
    ks = client.keyspace(wl.keyspace)
    kinds, weights = zip(*wl.mix)
    loop = asyncio.get_running_loop()
    n = 0
    while loop.time() < stop_at and (wl.max_ops is None or n < wl.max_ops):
        key = rng.choice(wl.keys)
        kind = rng.choices(kinds, weights)[0]
        try:
            read = await ks.aget(key)  # the client's own quorum read, or a coordinator's
        except RingKVError:
            await asyncio.sleep(0.1)  # back off while this key has no read quorum
            continue
        if wl.pause:
            await asyncio.sleep(wl.pause)  # pacing of the workload, not a wait for a condition
        if kind == "get":
            continue
        n += 1
        seen, context = (read.values, read.context) if read is not None else ([], None)
        # a key not found (never written, or deleted) gives no context: that write is blind too
        blind = kind == "blind_put" or context is None
        value = None if kind == "delete" else f"{wl.tag}c{ci}-{n}".encode()
        op = rec.invoke("delete" if value is None else "put", key, value, () if blind else seen, ci)
        try:
            if value is None:
                await ks.adelete(key, context=context)
            else:
                await ks.aput(key, value, context=None if blind else context)
            rec.complete(op, OK, blind=blind)
        except BadRequest as exc:
            rec.complete(op, FAILED, str(exc), blind=blind)
        except RingKVError as exc:  # timeouts and quorum errors: the write may have landed
            rec.complete(op, UNKNOWN, type(exc).__name__, blind=blind)


async def feed_worker(ci: int, client, wl: Workload, rec: Recorder, rng: random.Random, stop_at: float) -> None:
    ks = client.keyspace(wl.keyspace)
    loop = asyncio.get_running_loop()
    mine: list[tuple[bytes, str]] = []
    n = 0
    while loop.time() < stop_at and (wl.max_ops is None or n < wl.max_ops):
        n += 1
        if wl.pause:
            await asyncio.sleep(wl.pause)  # pacing of the workload
        if mine and rng.random() < wl.remove_share:
            name, eid = mine.pop(rng.randrange(len(mine)))
            op = rec.feeds.invoke("remove", name, entry_id=eid, client=ci)
            call = ks.feed(name).aremove(eid)
        else:
            name = rng.choice(wl.feeds)
            payload = f"{wl.tag}f{ci}-{n}".encode()
            op = rec.feeds.invoke("append", name, payload, client=ci)
            call = ks.feed(name).aappend(payload)
        try:
            eid = await call
            if op["kind"] == "append":
                op["entry_id"] = eid
                mine.append((name, eid))
            op["outcome"] = OK
        except BadRequest as exc:
            op["outcome"], op["error"] = FAILED, str(exc)
        except RingKVError as exc:
            op["outcome"], op["error"] = UNKNOWN, type(exc).__name__
            await asyncio.sleep(0.05)  # back off while the feed has no quorum


# -- faults --------------------------------------------------------------------------


class SimFaults:
    """Nemesis actions on a :class:`~ringkv.simcluster.SimCluster`."""

    mode = "sim"

    def __init__(self, cluster) -> None:
        self.c = cluster
        self.size = len(cluster.configs)
        self._delay = cluster.net.delay

    def down(self) -> list[int]:
        return [i for i in range(self.size) if self.c.servers[i] is None]

    def supports(self, fault: str) -> bool:
        return fault in ("partition", "bridge", "isolate", "loss", "duplicate", "reorder", "crash")

    def partition(self, *groups: list[int]) -> None:
        self.c.partition(*groups)

    def loss(self, p: float) -> None:
        self.c.net.drop = p

    def duplicate(self, p: float) -> None:
        self.c.net.duplicate = p

    def reorder(self, max_delay: float) -> None:
        self.c.net.delay = (self._delay[0], max_delay)

    def heal_network(self) -> None:
        self.c.heal()
        self.c.net.duplicate = 0.0
        self.c.net.delay = self._delay

    async def crash(self, i: int) -> None:
        await self.c.crash(i)

    async def restart(self, i: int) -> None:
        await self.c.restart(i)

    async def heal_all(self) -> None:
        self.heal_network()
        for i in range(self.size):
            await self.c.restart(i)


class ProcessFaults:
    """Nemesis actions on a :class:`~ringkv.faults.ProcessCluster`."""

    mode = "process"

    def __init__(self, cluster) -> None:
        self.c = cluster
        self.size = cluster.size

    def down(self) -> list[int]:
        return [n.index for n in self.c.nodes if n.state != "running"]

    def paused(self) -> list[int]:
        return [n.index for n in self.c.nodes if n.state == "paused"]

    def supports(self, fault: str) -> bool:
        if fault in ("crash", "pause"):
            return True
        return self.c.network_for(fault) is not None

    def partition(self, *groups: list[int], fault: str = "partition") -> None:
        self.c.network_for(fault).partition(*groups)

    def slow(self, i: int, delay: float, jitter: float) -> None:
        self.c.network_for("slow").slow(i, delay, jitter)

    def loss(self, p: float) -> None:
        self.c.network_for("loss").loss(p)

    def heal_network(self) -> None:
        self.c.heal_network()

    async def crash(self, i: int) -> None:
        await self.c.kill(i)

    async def restart(self, i: int) -> None:
        await self.c.restart(i)

    def pause(self, i: int) -> None:
        self.c.pause(i)

    def resume(self, i: int) -> None:
        self.c.resume(i)

    async def heal_all(self) -> None:
        self.heal_network()
        await self.c.revive_all()


async def apply_action(f, action: str, rng: random.Random) -> str | None:
    """Do one nemesis action; returns what was done, or None if it did not apply."""
    n = f.size
    nodes = list(range(n))
    down = f.down()
    if action == "split" and f.supports("partition"):
        rng.shuffle(nodes)
        cut = rng.randint(1, n // 2)
        f.partition(nodes[cut:], nodes[:cut])
        return f"split {sorted(nodes[cut:])}|{sorted(nodes[:cut])}"
    if action == "isolate" and f.supports("isolate"):
        i = rng.randrange(n)
        f.partition([j for j in nodes if j != i], [i])
        return f"isolate {i}"
    if action == "bridge" and f.supports("bridge"):
        rng.shuffle(nodes)
        b, rest = nodes[0], nodes[1:]
        cut = rng.randint(1, len(rest) - 1)
        groups = (sorted(rest[:cut]), sorted(rest[cut:]))
        if f.mode == "process":
            f.partition(*groups, fault="bridge")
        else:
            f.partition(*groups)  # the bridge node is in no group: it reaches both sides
        return f"bridge {b} between {groups[0]}|{groups[1]}"
    if action == "heal":
        f.heal_network()
        return "heal"
    if action == "loss" and f.supports("loss"):
        p = rng.choice([0.02, 0.05, 0.2])
        f.loss(p)
        return f"loss {p}"
    if action == "duplicate" and f.supports("duplicate"):
        p = rng.choice([0.05, 0.2, 0.5])
        f.duplicate(p)
        return f"duplicate {p}"
    if action == "reorder" and f.supports("reorder"):
        d = rng.choice([0.02, 0.1, 0.4])
        f.reorder(d)
        return f"reorder up to {d}s"
    if action == "slow" and f.supports("slow"):
        i = rng.randrange(n)
        d, j = rng.choice([(0.05, 0.02), (0.2, 0.1), (0.5, 0.3)])
        f.slow(i, d, j)
        return f"slow {i} {d}+{j}s"
    if action == "crash" and len(down) < MAX_DOWN:
        i = rng.choice([j for j in nodes if j not in down])
        await f.crash(i)
        return f"kill -9 {i}" if f.mode == "process" else f"crash {i}"
    if action == "restart":
        dead = [j for j in down if j not in getattr(f, "paused", list)()]
        if dead:
            i = rng.choice(dead)
            await f.restart(i)
            return f"restart {i}"
    if action == "pause" and f.mode == "process" and len(down) < MAX_DOWN:
        i = rng.choice([j for j in nodes if j not in down])
        f.pause(i)
        return f"SIGSTOP {i}"
    if action == "resume" and f.mode == "process" and f.paused():
        i = rng.choice(f.paused())
        f.resume(i)
        return f"SIGCONT {i}"
    return None


async def nemesis(f, kind: str, rng: random.Random, stop_at: float, log: list, interval: tuple[float, float] = (0.5, 2.5)) -> None:
    """Draw actions of ``kind`` at random intervals until ``stop_at``; log what was done."""
    loop = asyncio.get_running_loop()
    actions = KINDS[kind]
    step = 0
    while True:
        await asyncio.sleep(rng.uniform(*interval))  # the schedule's pace, not a wait for a condition
        if loop.time() >= stop_at:
            return
        action = actions[step % len(actions)] if kind in SEQUENTIAL else rng.choice(actions)
        step += 1
        done = await apply_action(f, action, rng)
        if done:
            log.append((round(loop.time() - stop_at, 2), done))


# -- settle and check ----------------------------------------------------------------


async def _poll(check, timeout: float, step: float = 0.2):
    """Call async ``check`` until it returns something truthy; returns the last result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            result = await check()
        except RingKVError as exc:
            result = None
            last = exc
        else:
            last = result
        if result or loop.time() >= deadline:
            return result if result else last
        await asyncio.sleep(step)  # poll interval, bounded by the deadline


async def ring_view(client, addrs: list[str]) -> tuple[Ring, dict[str, str], list]:
    last: Exception = RingKVError("no node to ask")
    for a in addrs:
        try:
            reply = await client.call(ClusterView(), addr=a)
        except RingKVError as exc:
            last = exc
            continue
        members = reply.members  # type: ignore[attr-defined]
        ring = Ring({m[0]: m[2] for m in members if m[3] in ("up", "leaving") and m[2]})
        return ring, {m[0]: m[1] for m in members}, members
    raise last


async def wait_membership(client, addrs: list[str], timeout: float) -> bool:
    """Every node sees every node up and alive."""

    async def check() -> bool:
        for a in addrs:
            reply = await client.call(ClusterView(), addr=a, timeout=1.0)
            ms = reply.members  # type: ignore[attr-defined]
            if len(ms) != len(addrs) or any(m[3] != "up" or m[4] != "alive" for m in ms):
                return False
        return True

    return (await _poll(check, timeout)) is True


async def wait_hints(client, addrs: list[str], timeout: float) -> bool:
    """Every node delivered its hints."""

    async def check() -> bool:
        for a in addrs:
            reply = await client.call(NodeStats(), addr=a, timeout=1.0)
            if reply.hints:  # type: ignore[attr-defined]
                return False
        return True

    return (await _poll(check, timeout)) is True


def _repair_mode() -> str:
    try:
        from ringkv.repair import run_repair  # noqa: F401
    except ImportError:
        return "read"
    return "aae"


async def repair(client, wl: Workload, addrs: list[str], mode: str, notes: list) -> None:
    """Anti-entropy on every node, or reads of every key and feed at R=N."""
    if mode == "aae":
        from ringkv.repair import run_repair

        for a in addrs:
            try:
                stats = await run_repair(client, a, timeout=60.0)
                notes.append(f"aae {a}: repaired {stats.get('keys_repaired', 0)}")
            except RingKVError as exc:
                notes.append(f"aae {a}: {type(exc).__name__}: {exc}")
        return
    ks = client.keyspace(wl.keyspace)
    for key in wl.keys:
        try:
            await client.call(KvGet(wl.keyspace, key, wl.n), key)
        except RingKVError as exc:
            notes.append(f"read repair {key!r}: {type(exc).__name__}")
    for feed in wl.feeds:
        try:
            async for _ in ks.feed(feed).aiterate(r=wl.n):
                pass
        except RingKVError as exc:
            notes.append(f"read repair feed {feed!r}: {type(exc).__name__}")


@dataclass
class Final:
    """Every replica's copy of every key and feed."""

    copies: dict = field(default_factory=dict)  # key -> {node_id: DVVSet | None}
    feeds: dict = field(default_factory=dict)  # feed -> {node_id: [(entry id, DVVSet)]}
    errors: list = field(default_factory=list)
    names: dict = field(default_factory=dict)  # node_id -> printable name

    def diverged(self) -> list:
        out = [(k, c) for k, c in self.copies.items() if any(v != next(iter(c.values())) for v in c.values())]
        out += [(f, v) for f, v in self.feeds.items() if any(x != next(iter(v.values())) for x in v.values())]
        return out

    @property
    def converged(self) -> bool:
        return not self.errors and not self.diverged()


async def collect(client, wl: Workload, addrs: list[str], names: dict | None = None) -> Final:
    ring, addr_of, _ = await ring_view(client, addrs)
    final = Final(names=dict(names or {}))
    for key in wl.keys:
        copies = {}
        for node in ring.preference_list(key, wl.n):
            try:
                reply = await client.call(LocalGet(wl.keyspace, key), addr=addr_of[node], timeout=3.0)
            except RingKVError as exc:
                final.errors.append(f"{node} did not answer kv.local_get: {exc}")
                continue
            raw = reply.record  # type: ignore[attr-defined]
            copies[node] = decode_record(raw) if raw is not None else None
        final.copies[key] = copies
    for feed in wl.feeds:
        views = {}
        for node in ring.preference_list(feed, wl.n):
            entries: list = []
            after = None
            try:
                while True:
                    page = await client.call(FeedReplicaScan(wl.keyspace, feed, after, False, 1000), addr=addr_of[node], timeout=3.0)
                    rows = [(format_id(split_feed_key(k)[1]), decode_record(raw)) for k, raw in page.entries]  # type: ignore[attr-defined]
                    entries += rows
                    if not page.full or not rows:  # type: ignore[attr-defined]
                        break
                    after = split_feed_key(page.entries[-1][0])[1]  # type: ignore[attr-defined]
            except RingKVError as exc:
                final.errors.append(f"{node} did not answer feed.replica_scan: {exc}")
                continue
            views[node] = entries
        final.feeds[feed] = views
    return final


async def settle(f, client, wl: Workload, addrs: list[str], notes: list, *, mode: str | None = None,
                 timeout: float = 30.0, names: dict | None = None) -> Final:
    """Heal, restart, let hints and repair run, then collect (polling until replicas agree)."""
    await f.heal_all()
    if not await wait_membership(client, addrs, timeout):
        notes.append("membership did not converge after healing")
    if not await wait_hints(client, addrs, timeout):
        notes.append("hints were not all delivered")
    await repair(client, wl, addrs, mode or _repair_mode(), notes)
    box: dict = {}

    async def agreed() -> bool:
        box["final"] = await collect(client, wl, addrs, names)
        return box["final"].converged

    await _poll(agreed, timeout / 3, step=0.5)
    return box.get("final") or await collect(client, wl, addrs, names)


@dataclass
class Outcome:
    """The judged result of one scenario run."""

    scenario: str
    mode: str
    seed: int
    seconds: float
    verdict: Verdict
    feed: dict
    final: Final
    nemesis: list
    notes: list
    replay: str
    wall: float = 0.0
    history: History | None = None
    feed_log: FeedLog | None = None
    sibling_bound: int = 0

    @property
    def converged(self) -> bool:
        return self.final.converged

    @property
    def ok(self) -> bool:
        f = self.feed
        return (self.verdict.ok and self.converged and self.siblings_ok
                and not (f["lost"] or f["resurrected"] or f["duplicated"] or f["phantom"]))

    @property
    def siblings_ok(self) -> bool:
        return not self.sibling_bound or self.verdict.max_siblings <= self.sibling_bound

    def row(self) -> dict:
        v, f = self.verdict, self.feed
        return {
            "scenario": f"{self.mode}/{self.scenario}",
            "seed": self.seed,
            "seconds": self.seconds,
            "attempted": v.attempted + f["attempted"],
            "acknowledged": v.acknowledged + f["acknowledged"],
            "failed": v.failed + f["failed"],
            "unknown": v.unknown + f["unknown"],
            "lost": len(v.lost) + len(f["lost"]),
            "resurrected": len(v.resurrected) + len(f["resurrected"]),
            "duplicated": len(f["duplicated"]) + len(f["phantom"]),
            "converged": self.converged,
            "max_siblings": v.max_siblings,
            "faults": len(self.nemesis),
            "wall_seconds": round(self.wall, 1),
            "ok": self.ok,
        }

    def _replicas(self, key) -> str:
        names = self.final.names
        copies = self.final.copies.get(key) or self.final.feeds.get(key) or {}
        return "\n".join(f"    {names.get(node, node)}: {rec!r}" for node, rec in copies.items())

    def _writes_of(self, key: bytes, value: bytes) -> str:
        hist = self.history
        if hist is None:
            return ""
        hits = [op for op in hist.ops if op.key == key and (op.value == value or value in op.seen or value in op.maybe_seen)]
        return "\n".join(f"    {op.kind} {op.value!r} by client {op.client}: {op.outcome} {op.error} seen={sorted(op.seen)}" for op in hits[:8])

    def _feed_entry(self, item) -> str:
        """The operations on a feed entry and every replica's record of it."""
        if isinstance(item, dict):
            feed, eid = item["feed"], item["entry_id"]
        else:
            feed, eid = item[0], item[1] if isinstance(item[1], str) else None
        out = []
        if self.feed_log is not None and eid is not None:
            out += [f"    {op['kind']} {op['payload']!r} by client {op['client']}: {op['outcome']} {op['error']}"
                    for op in self.feed_log.ops if op["entry_id"] == eid]
        for node, entries in (self.final.feeds.get(feed) or {}).items():
            out.append(f"    {self.final.names.get(node, node)}: {dict(entries).get(eid)!r}")
        return "\n".join(out)

    def report(self) -> str:
        """What went wrong, minimal: the operations, every replica's version, how to replay."""
        if self.ok:
            return f"{self.mode}/{self.scenario} seed={self.seed}: ok {self.row()}"
        lines = [f"FAILED {self.mode}/{self.scenario} seed={self.seed} — replay: {self.replay}", f"  {self.row()}"]
        for op in self.verdict.lost[:3]:
            lines.append(f"  lost acknowledged put {op.key!r} = {op.value!r} (client {op.client}, its read saw {sorted(op.seen)}); replicas:")
            lines.append(self._replicas(op.key))
        for key, val in self.verdict.resurrected[:3]:
            lines.append(f"  resurrected {key!r} = {val!r}; writes involving it:")
            lines.append(self._writes_of(key, val))
            lines.append("  replicas:")
            lines.append(self._replicas(key))
        for key, copies in self.final.diverged()[:3]:
            if key in self.final.feeds:
                per_node = {node: dict(entries) for node, entries in copies.items()}
                eids = sorted({e for d in per_node.values() for e in d})
                odd = [e for e in eids if len({d.get(e) for d in per_node.values()}) > 1]
                lines.append(f"  replicas differ for feed {key!r} on {len(odd)} of {len(eids)} entries, e.g.:")
                for eid in odd[:3]:
                    lines.append(f"   entry {eid}:")
                    lines.append(self._feed_entry((key, eid, None)))
                continue
            lines.append(f"  replicas differ for {key!r}:")
            lines.append(self._replicas(key))
        for what in ("lost", "resurrected", "duplicated", "phantom"):
            for item in self.feed[what][:3]:
                lines.append(f"  feed {what}: {item}")
                lines.append(self._feed_entry(item))
        if not self.siblings_ok:
            key = max(self.final.copies, key=lambda k: max((len(c.values) for c in self.final.copies[k].values() if c), default=0))
            lines.append(f"  {self.verdict.max_siblings} siblings (bound {self.sibling_bound}) on {key!r}; replicas:")
            lines.append(self._replicas(key))
        lines += [f"  {e}" for e in self.final.errors[:5]]
        lines += [f"  note: {n}" for n in self.notes[:5]]
        lines.append(f"  nemesis (s before the end): {self.nemesis[-12:]}")
        return "\n".join(line for line in lines if line)


def judge(scenario: str, mode: str, seed: int, seconds: float, rec: Recorder, final: Final, log: list, notes: list, replay: str,
          wall: float, sibling_bound: int = 0) -> Outcome:
    values = {}
    for key, copies in final.copies.items():
        recs = [c for c in copies.values() if c is not None]
        values[key] = recs[0].values if recs else []
    verdict = rec.history.check(values)
    views = {}
    for feed, per_node in final.feeds.items():
        entries = next(iter(per_node.values()), [])
        views[feed] = [(eid, entry_data(rec)) for eid, rec in entries]
    return Outcome(scenario, mode, seed, seconds, verdict, rec.feeds.check(views), final, log, notes, replay, wall, rec.history,
                   rec.feeds, sibling_bound)


async def _run_workload(clients: list, feed_clients: list, wl: Workload, rec: Recorder, rng: random.Random, stop_at: float, extra=()) -> None:
    await asyncio.gather(
        *(kv_worker(ci, c, wl, rec, random.Random(rng.random()), stop_at) for ci, c in enumerate(clients)),
        *(feed_worker(ci, c, wl, rec, random.Random(rng.random()), stop_at) for ci, c in enumerate(feed_clients)),
        *extra,
    )


# -- simulation ------------------------------------------------------------------------


async def sim_scenario(root: str, seed: int, kind: str = "mixed", seconds: float = 20.0, wl: Workload | None = None,
                       *, repair_mode: str | None = None) -> Outcome:
    """One seeded run over a simulated 5-node cluster (call inside :func:`~ringkv.simloop.run_virtual`)."""
    from ringkv.simcluster import SimCluster

    wl = wl or Workload()
    began = time.monotonic()
    rng = random.Random(seed)
    cluster = await SimCluster(root, 5, seed=seed).start()
    rec, log, notes = Recorder(), [], []
    loop = asyncio.get_running_loop()
    try:
        size = len(cluster.configs)
        clients = [await cluster.client(ci % size, timeout=wl.timeout) for ci in range(wl.kv_clients)]
        fclients = [await cluster.client((ci + wl.kv_clients) % size, timeout=wl.timeout) for ci in range(wl.feed_clients)]
        f = SimFaults(cluster)
        stop_at = loop.time() + seconds
        nem = nemesis(f, kind, random.Random(rng.random()), stop_at, log)
        await _run_workload(clients, fclients, wl, rec, rng, stop_at, (nem,))
        await f.heal_all()
        checker = await cluster.client(0, timeout=5.0)
        names = {cluster.servers[i].node_id: f"n{i}" for i in range(size) if cluster.servers[i] is not None}
        final = await settle(f, checker, wl, cluster.addrs, notes, mode=repair_mode, names=names)
        names.update({s.node_id: f"n{i}" for i, s in enumerate(cluster.servers) if s is not None})
        final.names = names
    finally:
        await cluster.stop()
    return judge(kind, "sim", seed, seconds, rec, final, log, notes, f"RINGKV_SIM_SEEDS={seed}", time.monotonic() - began, wl.max_siblings)


def run_sim(root: str, seed: int, kind: str = "mixed", seconds: float = 20.0, wl: Workload | None = None, **kw) -> Outcome:
    """:func:`sim_scenario` on a fresh virtual-time loop."""
    from ringkv.simloop import run_virtual

    return run_virtual(sim_scenario(root, seed, kind, seconds, wl, **kw))


# -- real processes ------------------------------------------------------------------


async def process_scenario(cluster, kind: str, seed: int, seconds: float = 20.0, wl: Workload | None = None,
                           *, repair_mode: str | None = None, settle_timeout: float = 30.0,
                           interval: tuple[float, float] = (0.5, 2.5)) -> Outcome:
    """One seeded fault schedule against a running :class:`~ringkv.faults.ProcessCluster`.

    Leaves every node running, healed and converged, so several scenarios
    (with distinct ``wl.tag`` and keys) can share one cluster.
    """
    from ringkv.client import connect_async

    wl = wl or Workload()
    began = time.monotonic()
    rng = random.Random(seed)
    rec, log, notes = Recorder(), [], []
    loop = asyncio.get_running_loop()
    f = ProcessFaults(cluster)
    for fault in sorted({a for a in KINDS[kind]} & {"split", "bridge", "isolate", "slow", "loss"}):
        if not f.supports("partition" if fault == "split" else fault):
            notes.append(f"schedule step {fault!r} skipped: no network here can inject it")
    addrs = cluster.addrs
    checker = await connect_async(addrs, timeout=10.0)
    clients: list = []
    try:
        if not await wait_membership(checker, addrs, settle_timeout):
            notes.append("membership had not converged before the run")
        clients = [await connect_async(addrs, timeout=wl.timeout) for _ in range(wl.kv_clients + wl.feed_clients)]
        stop_at = loop.time() + seconds
        nem = nemesis(f, kind, random.Random(rng.random()), stop_at, log, interval)
        await _run_workload(clients[: wl.kv_clients], clients[wl.kv_clients:], wl, rec, rng, stop_at, (nem,))
        crashed = cluster.unexpected_exits()
        names = {n.node_id: f"n{n.index}" for n in cluster.nodes}
        final = await settle(f, checker, wl, addrs, notes, mode=repair_mode, timeout=settle_timeout, names=names)
        final.errors[:0] = crashed + cluster.unexpected_exits()
    finally:
        for c in [*clients, checker]:
            await c.aclose()
    replay = f"python benchmarks/chaos.py --process {kind} --seed {seed} --seconds {seconds:g}"
    return judge(kind, "process", seed, seconds, rec, final, log, notes, replay, time.monotonic() - began, wl.max_siblings)
