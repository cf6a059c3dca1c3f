"""Fault injection for real ``ringkv serve`` processes.

Two sides:

* **Node side** — :class:`Injector`. A node started with the environment
  variable ``RINGKV_FAULTS=/path/rules.json`` (and only then: it is never on
  by default) drops or delays the messages it sends to given peer addresses,
  replies included, as the rules file says. The transport calls it from its
  send path; the file is re-read when it changes (one ``stat`` every
  :data:`CHECK_EVERY` seconds at most), so a nemesis rewrites it to cut and
  heal links while the processes run.
* **Harness side** — :class:`RulesNetwork` writes that file (partitions,
  bridges, an isolated node, slow or lossy links), :class:`NetnsNetwork`
  does the same with Linux network namespaces where the kernel allows it
  (:func:`probe_netns`), and :class:`ProcessCluster` runs N ``ringkv serve``
  processes on loopback with ``kill -9`` / restart and ``SIGSTOP`` /
  ``SIGCONT``, and kills every one of them on :meth:`ProcessCluster.close`.

The rules file is JSON::

    {"seed": 7, "rules": [{"src": "tcp://127.0.0.1:7100", "dst": "*",
                           "drop": 1.0, "delay": 0.0, "jitter": 0.0}]}

A rule applies to every message from ``src`` to ``dst`` (``"*"`` matches any
node). Where several rules match, drop probabilities combine and delays add.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

__all__ = [
    "ENV",
    "Injector",
    "NetnsNetwork",
    "ProcessCluster",
    "Rule",
    "RulesNetwork",
    "probe_netns",
    "read_rules",
    "write_rules",
]

ENV = "RINGKV_FAULTS"
#: Seconds between two checks of the rules file for a change.
CHECK_EVERY = 0.02
ANY = "*"

log = logging.getLogger("ringkv.faults")


@dataclass(frozen=True)
class Rule:
    """Messages from ``src`` to ``dst``: dropped with probability ``drop``, else delayed."""

    src: str = ANY
    dst: str = ANY
    drop: float = 0.0
    #: Seconds added to every message, plus a uniform ``[0, jitter]``.
    delay: float = 0.0
    jitter: float = 0.0

    def matches(self, src: str, dst: str) -> bool:
        return self.src in (ANY, src) and self.dst in (ANY, dst)


def write_rules(path: str, rules: Iterable[Rule], seed: int = 0) -> None:
    """Replace the rules file atomically (readers never see half a file)."""
    data = json.dumps({"seed": seed, "rules": [asdict(r) for r in rules]})
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rules-", dir=d)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def read_rules(path: str) -> tuple[int, list[Rule]]:
    """``(seed, rules)`` from a rules file; ValueError if it is not one."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise ValueError(f"{path} is not a rules file")  # noqa: TRY004 (bad file content, not a bad argument)
    rules: list[Rule] = []
    for r in data.get("rules", []):
        rule = Rule(str(r.get("src", ANY)), str(r.get("dst", ANY)), float(r.get("drop", 0)), float(r.get("delay", 0)), float(r.get("jitter", 0)))
        if not (0 <= rule.drop <= 1 and rule.delay >= 0 and rule.jitter >= 0):
            raise ValueError(f"bad rule {r!r}")
        rules.append(rule)
    return int(data.get("seed", 0)), rules


# -- node side -------------------------------------------------------------------


class _Passed(tuple):
    """A queued outbound item the injector already let through (never judged twice)."""

    __slots__ = ()


class _PassedReply(bytes):
    """A reply part the injector already let through."""

    __slots__ = ()


class Injector:
    """Applies a rules file to one node's outbound messages (see the module doc).

    The transport calls :meth:`outbound` before it frames a peer's queue and
    :meth:`replies` before it sends replies. Dropped requests time out at the
    requester, as on a lossy network; delayed ones leave late, in the order
    their delays expire.
    """

    def __init__(self, path: str, me: str, loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self.me = me
        self.loop = loop
        self.rng = random.Random(me)
        self.stats = {"dropped": 0, "delayed": 0, "reloads": 0}
        self._rules: list[Rule] = []
        self._by_dst: dict[str, tuple[float, float, float] | None] = {}
        self._sig: object = None
        self._next_check = -1.0
        self._timers: set[asyncio.TimerHandle] = set()

    @classmethod
    def from_env(cls, me: str | None, loop: asyncio.AbstractEventLoop) -> Injector | None:
        path = os.environ.get(ENV)
        if not path or not me:
            return None
        log.warning("fault injection enabled from %s (%s=...)", path, ENV)
        return cls(path, me, loop)

    # -- rules -----------------------------------------------------------

    def refresh(self, now: float, force: bool = False) -> None:
        """Re-read the rules file if it changed (checked at most every CHECK_EVERY s unless ``force``)."""
        if now < self._next_check and not force:
            return
        self._next_check = now + CHECK_EVERY
        try:
            st = os.stat(self.path)
            sig: object = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            sig = None
        if sig == self._sig:
            return
        self._sig = sig
        rules: list[Rule] = []
        if sig is not None:
            try:
                seed, rules = read_rules(self.path)
                self.rng.seed(f"{seed}:{self.me}")
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                log.warning("ignoring unreadable fault rules %s: %s", self.path, exc)
                return
        self._rules = [r for r in rules if r.src in (ANY, self.me)]
        self._by_dst.clear()
        self.stats["reloads"] += 1

    def effect(self, dst: str) -> tuple[float, float, float] | None:
        """``(drop, delay, jitter)`` for messages from this node to ``dst``, or None."""
        try:
            return self._by_dst[dst]
        except KeyError:
            pass
        keep, delay, jitter = 1.0, 0.0, 0.0
        found = False
        for r in self._rules:
            if r.matches(self.me, dst):
                found = True
                keep *= 1.0 - r.drop
                delay += r.delay
                jitter += r.jitter
        out = (1.0 - keep, delay, jitter) if found else None
        self._by_dst[dst] = out
        return out

    def _judge(self, eff: tuple[float, float, float]) -> float | None:
        """None: drop; else the delay in seconds (0: send now)."""
        drop, delay, jitter = eff
        if drop and (drop >= 1.0 or self.rng.random() < drop):
            self.stats["dropped"] += 1
            return None
        d = delay + (self.rng.uniform(0.0, jitter) if jitter else 0.0)
        if d > 0:
            self.stats["delayed"] += 1
        return d

    def _later(self, delay: float, fn: Callable, *args) -> None:
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            fn(*args)

        handle = self.loop.call_later(delay, fire)
        self._timers.add(handle)

    # -- hooks called by the transport -------------------------------------

    def outbound(self, peer, now: float, mark: Callable) -> None:
        """Filter ``peer.queue`` in place: drop, hold back, or let through."""
        self.refresh(now)
        queue = peer.queue
        if not queue or all(type(item) is _Passed for item in queue):
            return
        eff = self.effect(peer.addr)
        kept = []
        for item in queue:
            if type(item) is _Passed or eff is None:
                kept.append(item if type(item) is _Passed else _Passed(item))
                continue
            d = self._judge(eff)
            if d is None:
                continue
            if d > 0:
                self._later(d, self._release, peer, _Passed(item), mark)
            else:
                kept.append(_Passed(item))
        queue[:] = kept

    @staticmethod
    def _release(peer, item: _Passed, mark: Callable) -> None:
        if not peer.closed:
            peer.queue.append(item)
            mark(peer)

    def replies(self, replies: dict[bytes, list[bytes]], now: float, resend: Callable[[bytes, bytes], None]) -> dict[bytes, list[bytes]]:
        """Filter replies by the requester's address (its routing id starts with it)."""
        self.refresh(now)
        if not self._rules:
            return replies
        out: dict[bytes, list[bytes]] = {}
        for ident, parts in replies.items():
            eff = self.effect(ident.split(b"#", 1)[0].decode("utf-8", "replace"))
            kept = []
            for part in parts:
                if eff is None or type(part) is _PassedReply:
                    kept.append(part)
                    continue
                d = self._judge(eff)
                if d is None:
                    continue
                if d > 0:
                    self._later(d, resend, ident, _PassedReply(part))
                else:
                    kept.append(part)
            if kept:
                out[ident] = kept
        return out

    def close(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()


# -- harness side: networks ------------------------------------------------------


def _split_rules(groups: list[list[str]]) -> list[Rule]:
    """Block every message between members of different groups (both directions)."""
    out = []
    for i, g in enumerate(groups):
        for j, h in enumerate(groups):
            if i != j:
                out.extend(Rule(a, b, drop=1.0) for a in g for b in h)
    return out


class RulesNetwork:
    """Network faults between nodes through the rules file their injectors read.

    Nodes are named by index; :class:`ProcessCluster` sets :attr:`addr_of`.
    Nodes in no group of a partition reach everyone (a bridge node).
    Partitions and slow links name node addresses only, so the harness's
    clients are never cut off; loss applies to everything a node sends,
    replies to clients included (as in the simulator).
    """

    kind = "injector"
    supports = frozenset({"partition", "bridge", "isolate", "slow", "loss"})

    def __init__(self, path: str, seed: int = 0) -> None:
        self.path = path
        self.seed = seed
        self.addr_of: Callable[[int], str] = lambda i: str(i)
        self._cut: list[Rule] = []
        self._slow: dict[int, list[Rule]] = {}
        self._loss: list[Rule] = []
        self.write()

    def env(self) -> dict:
        """Environment variables that make a node process read this network's rules."""
        return {ENV: self.path}

    def write(self) -> None:
        rules = [*self._cut, *(r for rs in self._slow.values() for r in rs), *self._loss]
        write_rules(self.path, rules, self.seed)

    def partition(self, *groups: list[int]) -> None:
        self._cut = _split_rules([[self.addr_of(i) for i in g] for g in groups])
        self.write()

    def slow(self, i: int, delay: float, jitter: float = 0.0) -> None:
        """Every message to and from node ``i`` takes ``delay`` (+ up to ``jitter``) longer."""
        a = self.addr_of(i)
        self._slow[i] = [Rule(a, ANY, delay=delay, jitter=jitter), Rule(ANY, a, delay=delay, jitter=jitter)]
        self.write()

    def loss(self, p: float) -> None:
        """Every node-to-node message is lost with probability ``p``."""
        self._loss = [Rule(ANY, ANY, drop=p)] if p > 0 else []
        self.write()

    def heal(self) -> None:
        self._cut, self._slow, self._loss = [], {}, []
        self.write()

    def close(self) -> None:
        self.heal()


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL, check=False)


def _try_steps(steps: list[tuple[list[str], str]], cleanup: list[list[str]]) -> str:
    """Run probe commands until one fails; returns why ("" if all worked)."""
    reason = ""
    try:
        for argv, what in steps:
            try:
                res = _run(argv)
            except (OSError, subprocess.TimeoutExpired) as exc:
                reason = f"{what}: {exc}"
                break
            if res.returncode != 0:
                lines = (res.stderr or res.stdout).strip().splitlines()
                reason = f"{what}: {lines[0] if lines else 'failed'}"
                break
    finally:
        for argv in cleanup:
            try:
                _run(argv)
            except (OSError, subprocess.TimeoutExpired):
                pass
    return reason


def probe_netns() -> dict[str, tuple[bool, str]]:
    """What network namespaces can do on this machine, probed once in subprocesses.

    ``{"partition": (ok, reason), "slow": (ok, reason)}``: partitions need
    ``ip netns add``, a veth pair into a namespace and bridges to move links
    between; slow links need the ``netem`` qdisc.
    """
    if sys.platform != "linux":
        no = (False, "network namespaces need Linux")
        return {"partition": no, "slow": no}
    tag = f"rkp{os.getpid() % 100000}"
    ns, a, br = tag + "n", tag + "a", tag + "br"
    cleanup = [["ip", "link", "del", br], ["ip", "link", "del", a], ["ip", "netns", "del", ns]]
    part = _try_steps([
        (["ip", "netns", "add", ns], "ip netns add"),
        (["ip", "link", "add", a, "type", "veth", "peer", "name", "eth0", "netns", ns], "veth pair into a namespace"),
        (["ip", "link", "add", br, "type", "bridge"], "bridge"),
        (["ip", "link", "set", a, "master", br, "up"], "link on a bridge"),
    ], cleanup)
    slow = _try_steps([
        (["ip", "link", "add", a, "type", "veth", "peer", "name", tag + "b"], "veth pair"),
        (["tc", "qdisc", "add", "dev", a, "root", "netem", "delay", "10ms"], "tc netem"),
    ], cleanup)
    return {"partition": (not part, part or "ok"), "slow": (not slow, slow or "ok")}


def _free_subnet() -> int:
    """A ``10.213.S.0/24`` no interface of this host uses yet."""
    try:
        used = _run(["ip", "-o", "addr", "show"]).stdout
    except (OSError, subprocess.TimeoutExpired):
        used = ""
    start = os.getpid() % 200
    for k in range(200):
        s = 20 + (start + k) % 200
        if f" 10.213.{s}." not in used:
            return s
    raise OSError("no free 10.213.x.0/24 subnet")


class NetnsNetwork:
    """Each node in its own network namespace, linked to a bridge; partitions move links.

    Node ``i`` listens on ``10.213.S.(i+2)`` in namespace ``ns(i)``; the
    harness reaches the nodes on the main bridge through its address
    ``10.213.S.1``. A partition moves the links of every group but the first
    to a second bridge, so TCP connections between the sides stall as on a
    real network (the harness stays with the first group). Slow links use
    ``netem`` where the kernel has it (``slow_ok``). A bridge node (one that
    reaches both sides) cannot be built from links alone: not supported.
    """

    kind = "netns"

    def __init__(self, size: int, subnet: int = 0, *, slow_ok: bool = False) -> None:
        self.size = size
        self.subnet = subnet or _free_subnet()
        self.tag = f"rk{os.getpid()}"
        self.slow_ok = slow_ok
        self.supports = frozenset({"partition", "isolate", *(("slow",) if slow_ok else ())})
        self.addr_of: Callable[[int], str] = lambda i: self.ip(i)
        self._made: list[list[str]] = []
        self._slowed: set[int] = set()

    def ip(self, i: int) -> str:
        return f"10.213.{self.subnet}.{i + 2}"

    def ns(self, i: int) -> str:
        return f"{self.tag}n{i}"

    def _host_if(self, i: int) -> str:
        return f"{self.tag}h{i}"

    def _do(self, *argv: str, undo: list[str] | None = None) -> None:
        res = _run(list(argv))
        if res.returncode != 0:
            raise OSError(f"{' '.join(argv)}: {res.stderr.strip()}")
        if undo:
            self._made.append(undo)

    def setup(self) -> NetnsNetwork:
        try:
            for b in (self.tag + "a", self.tag + "b"):
                self._do("ip", "link", "add", b, "type", "bridge", undo=["ip", "link", "del", b])
                self._do("ip", "link", "set", b, "up")
            self._do("ip", "addr", "add", f"10.213.{self.subnet}.1/24", "dev", self.tag + "a")
            for i in range(self.size):
                ns, h = self.ns(i), self._host_if(i)
                self._do("ip", "netns", "add", ns, undo=["ip", "netns", "del", ns])
                self._do("ip", "link", "add", h, "type", "veth", "peer", "name", "eth0", "netns", ns, undo=["ip", "link", "del", h])
                self._do("ip", "link", "set", h, "master", self.tag + "a", "up")
                self._do("ip", "-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
                self._do("ip", "-n", ns, "link", "set", "eth0", "up")
                self._do("ip", "-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns(i)]

    def listen(self, i: int) -> str:
        return f"tcp://{self.ip(i)}:7100"

    def env(self) -> dict:
        return {}

    def partition(self, *groups: list[int]) -> None:
        """Indices per group; the first group stays on the main bridge, with the harness."""
        side = {i: k for k, g in enumerate(groups) for i in g}
        for i in range(self.size):
            self._do("ip", "link", "set", self._host_if(i), "master", self.tag + ("a" if side.get(i, 0) == 0 else "b"))

    def slow(self, i: int, delay: float, jitter: float = 0.0) -> None:
        spec = ["delay", f"{int(delay * 1000)}ms"] + ([f"{int(jitter * 1000)}ms"] if jitter else [])
        self._do("tc", "qdisc", "replace", "dev", self._host_if(i), "root", "netem", *spec)
        self._do("ip", "netns", "exec", self.ns(i), "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec)
        self._slowed.add(i)

    def loss(self, p: float) -> None:
        raise NotImplementedError("message loss needs the rules injector")

    def heal(self) -> None:
        for i in range(self.size):
            self._do("ip", "link", "set", self._host_if(i), "master", self.tag + "a")
        for i in sorted(self._slowed):
            _run(["tc", "qdisc", "del", "dev", self._host_if(i), "root"])
            _run(["ip", "netns", "exec", self.ns(i), "tc", "qdisc", "del", "dev", "eth0", "root"])
        self._slowed.clear()

    def close(self) -> None:
        for undo in reversed(self._made):
            try:
                _run(undo)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._made.clear()


# -- harness side: processes -----------------------------------------------------

_LISTENING = re.compile(r"^ringkv node (\S+) listening on (\S+)$")
RUNNING, PAUSED, DEAD = "running", "paused", "dead"


class NodeProc:
    """One ``ringkv serve`` process: data dir, address, id, state."""

    def __init__(self, index: int, root: str, listen: str, prefix: list[str] | None = None) -> None:
        self.index = index
        self.name = f"n{index}"
        self.data_dir = os.path.join(root, self.name)
        self.log_path = os.path.join(root, f"{self.name}.log")
        self.listen = listen
        self.addr = ""
        self.node_id = ""
        self.prefix = prefix or []
        self.proc: asyncio.subprocess.Process | None = None
        self.state = DEAD
        self.killed = False

    def log_tail(self, n: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class ProcessCluster:
    """``size`` ``ringkv serve`` processes on loopback, or each in a namespace.

    ``rules``: a :class:`RulesNetwork` every node reads (the transport-level
    injector); ``netns``: a :class:`NetnsNetwork` already set up. Network
    faults go to the namespaces when they support the fault, else to the
    injector (:meth:`network_for`).

    Use ``async with``, or call :meth:`close` in a ``finally``: it SIGKILLs
    every process still alive, paused ones included; it is safe to call from
    synchronous code and more than once.
    """

    def __init__(self, root: str, size: int = 5, *, vnodes: int = 32, rules: RulesNetwork | None = None,
                 netns: NetnsNetwork | None = None, start_timeout: float = 20.0) -> None:
        self.root = root
        self.rules = rules
        self.netns = netns
        self.vnodes = vnodes
        self.start_timeout = start_timeout
        self.nodes: list[NodeProc] = []
        for i in range(size):
            if netns is not None:
                self.nodes.append(NodeProc(i, root, netns.listen(i), netns.prefix(i)))
            else:
                self.nodes.append(NodeProc(i, root, "tcp://127.0.0.1:0"))
        if rules is not None:
            rules.addr_of = lambda i: self.nodes[i].addr

    @property
    def addrs(self) -> list[str]:
        return [n.addr for n in self.nodes]

    @property
    def size(self) -> int:
        return len(self.nodes)

    def running(self) -> list[int]:
        return [n.index for n in self.nodes if n.state == RUNNING]

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGKV_")}
        if self.rules is not None:
            env.update(self.rules.env())
        return env

    # -- network ----------------------------------------------------------

    def network_for(self, fault: str):
        """The network that injects ``fault`` (partition, bridge, isolate, slow, loss), or None."""
        for net in (self.netns, self.rules):
            if net is not None and fault in net.supports:
                return net
        return None

    def heal_network(self) -> None:
        for net in (self.netns, self.rules):
            if net is not None:
                net.heal()

    # -- processes ----------------------------------------------------------

    async def _launch(self, node: NodeProc, seeds: list[str]) -> None:
        argv = [*node.prefix, sys.executable, "-m", "ringkv.cli.main", "serve", "--data-dir", node.data_dir,
                "--listen", node.listen, "--vnodes", str(self.vnodes)]
        for s in seeds:
            argv += ["--seed", s]
        logf = os.open(node.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            node.proc = await asyncio.create_subprocess_exec(
                *argv, stdout=subprocess.PIPE, stderr=logf, stdin=subprocess.DEVNULL, env=self._env(), start_new_session=True,
            )
        finally:
            os.close(logf)
        node.state, node.killed = RUNNING, False
        try:
            line = await asyncio.wait_for(node.proc.stdout.readline(), self.start_timeout)  # type: ignore[union-attr]
        except TimeoutError:
            line = b""
        m = _LISTENING.match(line.decode("utf-8", "replace").strip())
        if not m:
            self._kill(node)
            await node.proc.wait()
            raise RuntimeError(f"{node.name} did not start (exit {node.proc.returncode}):\n{node.log_tail()}")
        node.node_id, node.addr = m.group(1), m.group(2)
        node.listen = node.addr  # a restart comes back on the same address

    async def start(self) -> ProcessCluster:
        first, rest = self.nodes[0], self.nodes[1:]
        await self._launch(first, [])
        for node in rest:  # one at a time: nodes joining together pick overlapping tokens
            await self._launch(node, [first.addr])
        return self

    async def kill(self, i: int) -> None:
        """``kill -9`` node ``i`` (paused or not) and reap it."""
        node = self.nodes[i]
        self._kill(node)
        if node.proc is not None:
            await node.proc.wait()

    async def restart(self, i: int) -> None:
        """Start node ``i`` again on its data directory and address."""
        node = self.nodes[i]
        if node.state != DEAD:
            return
        seeds = [n.addr for n in self.nodes if n is not node and n.state == RUNNING]
        await self._launch(node, seeds or [n.addr for n in self.nodes if n is not node])

    def pause(self, i: int) -> None:
        """``SIGSTOP``: the process keeps its sockets but answers nothing."""
        node = self.nodes[i]
        if node.state == RUNNING and node.proc is not None:
            node.proc.send_signal(signal.SIGSTOP)
            node.state = PAUSED

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if node.state == PAUSED and node.proc is not None:
            node.proc.send_signal(signal.SIGCONT)
            node.state = RUNNING

    def unexpected_exits(self) -> list[str]:
        """Nodes whose process ended without being killed here (a crash): name, status, log tail."""
        out = []
        for n in self.nodes:
            if n.state != DEAD and n.proc is not None and n.proc.returncode is not None:
                out.append(f"{n.name} ({n.node_id}) exited by itself with status {n.proc.returncode}; log tail:\n{n.log_tail(8)}")
                n.state = DEAD
        return out

    async def revive_all(self) -> None:
        """Resume paused nodes and restart dead ones."""
        for n in self.nodes:
            if n.state == PAUSED:
                self.resume(n.index)
        for n in self.nodes:
            if n.state == DEAD:
                await self.restart(n.index)

    @staticmethod
    def _kill(node: NodeProc) -> None:
        proc = node.proc
        if proc is not None and proc.returncode is None and not node.killed:
            node.killed = True  # once: after reaping, the pid may belong to someone else
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        node.state = DEAD

    def close(self) -> None:
        """SIGKILL every process and undo the network (sync, idempotent).

        asyncio's child watcher reaps the processes; :meth:`aclose` also
        waits for that.
        """
        for node in self.nodes:
            self._kill(node)
        for net in (self.rules, self.netns):
            if net is not None:
                net.close()

    async def aclose(self) -> None:
        for node in self.nodes:
            self._kill(node)
        for node in self.nodes:
            if node.proc is not None and node.proc.returncode is None:
                try:
                    await asyncio.wait_for(node.proc.wait(), 10)
                except TimeoutError:
                    pass
        self.close()

    async def __aenter__(self) -> ProcessCluster:
        try:
            return await self.start()
        except BaseException:
            self.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
