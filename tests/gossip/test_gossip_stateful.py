"""Tier 2: a hypothesis state machine over a few gossip cores on an adversarial link.

Messages are delivered in any order, dropped or duplicated, owner actions
interleave. Model: the CRDT join of every member entry and metadata entry any
node ever produced. After the network is made perfect for a while, every node
must hold exactly that join.
"""

from __future__ import annotations

import random

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ringkv.errors import BadRequest
from ringkv.gossip import (
    JOINING, LEAVING, UP, GossipNode, MemberChanged, MetaEntry, Send, merge_member, merge_meta,
)

N = 4


def addr(i: int) -> str:
    return f"tcp://127.0.0.1:{7200 + i}"


class GossipMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.cores = [GossipNode(f"n{i}", addr(i), seeds=[addr(0)] if i else [], tokens=(i,),
                                 rng=random.Random(i)) for i in range(N)]
        self.by_addr = {c.addr: c for c in self.cores}
        self.pending: list[tuple[str, Send]] = []
        self.members = {c.node_id: c.self_member for c in self.cores}
        self.meta: dict[str, MetaEntry] = {}

    def _run(self, src: str, effects: list) -> None:
        for e in effects:
            if isinstance(e, Send):
                self.pending.append((src, e))
            elif isinstance(e, MemberChanged):
                nid = e.new.node_id
                self.members[nid] = merge_member(self.members.get(nid), e.new)

    @rule(i=st.integers(0, N - 1), dt=st.floats(0.01, 0.6))
    def tick(self, i, dt):
        self.now += dt
        self._run(self.cores[i].addr, self.cores[i].tick(self.now))

    @precondition(lambda self: self.pending)
    @rule(k=st.integers(0, 10**6), fate=st.sampled_from(["deliver", "deliver", "deliver", "drop", "dup"]))
    def network(self, k, fate):
        src, e = self.pending.pop(k % len(self.pending))
        if fate == "dup":
            self.pending.append((src, e))
        if fate != "drop" and e.addr in self.by_addr:
            self._run(e.addr, self.by_addr[e.addr].receive(src, e.msg, self.now))

    @rule(i=st.integers(0, N - 1), key=st.sampled_from(["ks/a", "ks/b"]),
          value=st.one_of(st.none(), st.integers(0, 3)))
    def set_metadata(self, i, key, value):
        self._run(self.cores[i].addr, self.cores[i].set_metadata(key, value, self.now))
        e = self.cores[i]._meta.get(key)
        self.meta[key] = merge_meta(self.meta.get(key), e)

    @rule(i=st.integers(0, N - 1), status=st.sampled_from([JOINING, UP, LEAVING]))
    def update_self(self, i, status):
        try:
            self._run(self.cores[i].addr, self.cores[i].update_self(self.now, status=status))
        except BadRequest:  # it was removed meanwhile
            pass

    @rule(i=st.integers(0, N - 1), j=st.integers(1, N - 1))
    def remove(self, i, j):
        if i != j and f"n{j}" in self.cores[i].members:
            self._run(self.cores[i].addr, self.cores[i].remove_member(f"n{j}", self.now))

    @invariant()
    def views_never_exceed_the_model(self):
        for c in self.cores:
            for nid, m in c.members.items():
                assert merge_member(self.members.get(nid), m) == self.members[nid]

    def teardown(self):
        # a perfect network for a while: everyone must reach the model exactly
        for _ in range(60):
            self.now += 0.2
            for c in self.cores:
                self._run(c.addr, c.tick(self.now))
            while self.pending:
                src, e = self.pending.pop(0)
                if e.addr in self.by_addr:
                    self._run(e.addr, self.by_addr[e.addr].receive(src, e.msg, self.now))
        for c in self.cores:
            assert dict(c.members) == self.members
            assert {k: e.value for k, e in self.meta.items() if e.value is not None} == dict(c.metadata)


GossipMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestGossipMachine = GossipMachine.TestCase
