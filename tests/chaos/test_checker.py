"""The checker itself: it must catch what it claims to catch, and excuse only what it may."""

from __future__ import annotations

import random

from ringkv.quorum.dvv import DVVSet

from ringkv.chaos import FeedLog, Final, Outcome, Recorder, apply_action, judge
from ringkv.history import FAILED, OK, UNKNOWN


def _rec(*values: bytes) -> DVVSet:
    return DVVSet({"a": len(values)}, [("a", i + 1, 0, v) for i, v in enumerate(values)])


def _final(copies: dict) -> Final:
    return Final(copies={k: {"n0": c, "n1": c, "n2": c} for k, c in copies.items()})


def _judge(rec: Recorder, final: Final, bound: int = 0) -> Outcome:
    return judge("unit", "sim", 0, 1.0, rec, final, [], [], "RINGKV_SIM_SEEDS=0", 0.0, bound)


def test_a_missing_acknowledged_put_is_lost():
    rec = Recorder()
    op = rec.invoke("put", b"k", b"v1", [], 0)
    rec.complete(op, OK)
    out = _judge(rec, _final({b"k": None}))
    assert [o.value for o in out.verdict.lost] == [b"v1"] and not out.ok
    assert "lost acknowledged put b'k' = b'v1'" in out.report()
    assert "RINGKV_SIM_SEEDS=0" in out.report()


def test_a_superseded_value_that_comes_back_is_resurrected():
    rec = Recorder()
    rec.complete(rec.invoke("put", b"k", b"v1", [], 0), OK)
    rec.complete(rec.invoke("delete", b"k", None, [b"v1"], 1), OK)
    out = _judge(rec, _final({b"k": _rec(b"v1")}))
    assert out.verdict.resurrected == [(b"k", b"v1")] and not out.ok
    assert "resurrected b'k' = b'v1'" in out.report()


def test_an_unacknowledged_delete_excuses_but_does_not_resurrect():
    rec = Recorder()
    rec.complete(rec.invoke("put", b"k", b"v1", [], 0), OK)
    rec.complete(rec.invoke("delete", b"k", None, [b"v1"], 1), UNKNOWN)
    assert _judge(rec, _final({b"k": None})).ok  # the delete may have landed
    assert _judge(rec, _final({b"k": _rec(b"v1")})).ok  # or not


def test_a_put_without_context_may_supersede_earlier_values_only():
    rec = Recorder()
    rec.complete(rec.invoke("put", b"k", b"v1", [], 0), OK)
    blind = rec.invoke("put", b"k", b"v2", [], 1)
    rec.complete(blind, OK, blind=True)
    late = rec.invoke("put", b"k", b"v3", [], 2)
    rec.complete(late, OK)
    assert blind.maybe_seen == {b"v1"}
    assert _judge(rec, _final({b"k": _rec(b"v2", b"v3")})).ok  # v1 may have been superseded
    assert _judge(rec, _final({b"k": _rec(b"v1", b"v2", b"v3")})).ok  # or kept: never resurrected
    lost = _judge(rec, _final({b"k": _rec(b"v3")}))  # the blind put itself must survive
    assert [o.value for o in lost.verdict.lost] == [b"v2"]


def test_siblings_over_the_bound_fail_the_run():
    rec = Recorder()
    for i in range(4):
        rec.complete(rec.invoke("put", b"k", b"v%d" % i, [], i), OK)
    final = _final({b"k": _rec(b"v0", b"v1", b"v2", b"v3")})
    assert _judge(rec, final, bound=4).ok
    out = _judge(rec, final, bound=3)
    assert out.verdict.max_siblings == 4 and not out.ok
    assert "4 siblings (bound 3) on b'k'" in out.report()


def test_replicas_that_differ_are_reported_with_every_version():
    rec = Recorder()
    rec.complete(rec.invoke("put", b"k", b"v1", [], 0), OK)
    final = Final(copies={b"k": {"n0": _rec(b"v1"), "n1": None, "n2": _rec(b"v1")}}, names={"n1": "node-1"})
    out = _judge(rec, final)
    assert not out.converged and not out.ok
    assert "replicas differ for b'k'" in out.report() and "node-1: None" in out.report()


def test_feed_checks():
    log = FeedLog()
    ops = {}
    for i, outcome in enumerate([OK, OK, OK, UNKNOWN, FAILED]):
        op = log.invoke("append", b"f", b"p%d" % i)
        op["outcome"], op["entry_id"] = outcome, f"e{i}"
        ops[i] = op
    rm = log.invoke("remove", b"f", entry_id="e1")
    rm["outcome"] = OK
    good = log.check({b"f": [("e0", b"p0"), ("e1", None), ("e2", b"p2")]})
    assert not (good["lost"] or good["resurrected"] or good["duplicated"] or good["phantom"])
    bad = log.check({b"f": [("e1", b"p1"), ("e2", b"p2"), ("e9", b"p2"), ("e8", b"zz")]})
    assert [op["payload"] for op in bad["lost"]] == [b"p0"]
    assert bad["resurrected"] == [(b"f", "e1", b"p1")]
    assert bad["duplicated"] == [(b"f", b"p2", 2)]
    assert bad["phantom"] == [(b"f", "e8", b"zz")]


class _Fake:
    """Records nemesis actions instead of doing them."""

    mode = "process"
    size = 5

    def __init__(self) -> None:
        self.calls: list = []
        self._down: list = []
        self._paused: list = []

    def down(self):
        return self._down + self._paused

    def paused(self):
        return self._paused

    def supports(self, fault):
        return True

    def partition(self, *groups, fault="partition"):
        self.calls.append(("partition", fault, groups))

    def heal_network(self):
        self.calls.append(("heal",))

    async def crash(self, i):
        self._down.append(i)

    async def restart(self, i):
        self._down.remove(i)

    def pause(self, i):
        self._paused.append(i)

    def resume(self, i):
        self._paused.remove(i)


def test_nemesis_never_takes_more_than_two_nodes_down():
    import asyncio

    f = _Fake()
    rng = random.Random(5)

    async def go():
        for _ in range(300):
            await apply_action(f, rng.choice(["crash", "pause", "restart", "resume"]), rng)
            assert len(f.down()) <= 2

    asyncio.run(go())


def test_bridge_partitions_leave_one_node_on_both_sides():
    import asyncio

    f = _Fake()
    done = asyncio.run(apply_action(f, "bridge", random.Random(1)))
    (_, fault, groups), = f.calls
    assert fault == "bridge" and done.startswith("bridge")
    assert len(groups) == 2 and len(groups[0]) + len(groups[1]) == 4 and not set(groups[0]) & set(groups[1])
