"""The generic simulator, driven with a toy core."""

from __future__ import annotations

from dataclasses import dataclass

from ringkv.gossip import SimCluster
from ringkv.simnet import SimNet, uniform_delay
from ringkv.wire import Message, message


@message("test.simnet.hello")
class Hello(Message):
    seq: int
    note: str


@dataclass(frozen=True)
class Out:
    addr: str
    msg: Message


class Chatter:
    """Sends Hello(seq) to ``peer`` every ``every`` seconds; logs what it receives."""

    def __init__(self, peer: str, every: float = 1.0) -> None:
        self.peer, self.every = peer, every
        self.seq = 0
        self.next = 0.0
        self.got: list[tuple[float, str, int]] = []

    def tick(self, now):
        if now < self.next:
            return []
        self.next = now + self.every
        self.seq += 1
        return [Out(self.peer, Hello(self.seq, "hi")), ("log", self.seq)]

    def receive(self, src, msg, now):
        self.got.append((now, src, msg.seq))
        return []

    def next_deadline(self):
        return self.next


def pair(seed=0, **kw):
    net = SimNet(seed, **kw)
    a, b = Chatter("b"), Chatter("a")
    net.add("a", a)
    net.add("b", b)
    return net, a, b


def test_ticks_and_delivery_on_virtual_time():
    logged = []
    net, a, b = pair(on_effect=lambda addr, eff, now: logged.append((addr, eff, now)))
    net.run_until(10.0)
    assert net.now == 10.0
    assert [s for _, _, s in b.got] == list(range(1, 11))
    assert all(src == "a" for _, src, _ in b.got)
    assert ("a", ("log", 1), 0.0) in logged
    assert net.stats["delivered"] == 20 and net.stats["undecodable"] == 0


def test_drop_duplicate_and_reorder():
    net, a, b = pair(drop=1.0)
    net.run_until(5)
    assert b.got == [] and net.stats["dropped"] == net.stats["sent"]
    net, a, b = pair(duplicate=1.0)
    net.run_until(5)
    assert len(b.got) == 2 * 5
    net = SimNet(1, delay=uniform_delay(0.0, 1.0))
    fast = Chatter("b", every=0.01)
    sink = Chatter("nobody", every=1e9)
    net.add("a", fast)
    net.add("b", sink)
    net.run_until(2)
    seqs = [s for _, _, s in sink.got]
    assert sorted(seqs) != seqs  # independent delays reorder


def test_partition_and_heal():
    net = SimNet(0)
    cores = {x: Chatter({"a": "b", "b": "c", "c": "a"}[x]) for x in "abc"}
    for x, c in cores.items():
        net.add(x, c)
    net.partition(["a"], ["b", "c"])
    net.run_until(5)
    assert cores["b"].got == [] and cores["a"].got == []  # a->b and c->a cut
    assert len(cores["c"].got) == 5  # b->c inside one side
    net.heal()
    net.run_until(10)
    assert cores["b"].got and cores["a"].got


def test_crash_and_restart():
    net, a, b = pair()
    net.run_until(3)
    net.crash("b")
    n, seq = len(b.got), b.seq
    net.run_until(6)
    assert len(b.got) == n and net.stats["lost_down"] >= 2
    assert b.seq == seq  # no ticks while down
    fresh = Chatter("a")
    net.restart("b", fresh)
    net.run_until(9)
    assert fresh.got and fresh.seq >= 3


def test_codec_rejects_what_fails_validation():
    net = SimNet(0)
    sink = Chatter("x", every=1e9)
    net.add("b", sink)
    net.send("a", "b", Hello("not-an-int", "x"))  # type: ignore[arg-type]
    net.send("a", "b", Hello(1, "ok"))
    net.run_until(1)
    assert net.stats["undecodable"] == 1 and [s for _, _, s in sink.got] == [1]


def test_same_seed_same_run():
    def run(seed):
        c = SimCluster(8, seed, drop=0.05, delay=uniform_delay(0.001, 0.05))
        c.crash(3)
        c.net.run_until(20)
        return dict(c.net.stats), [(t, a, repr(e)) for t, a, e in c.events]

    assert run(7) == run(7)
    assert run(7) != run(8)
