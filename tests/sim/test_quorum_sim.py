"""Seeded fault simulations of a 5-node cluster running the real node code.

Clients read-modify-write (and delete) a few hot keys while a nemesis
partitions the network, drops messages and crashes/restarts nodes. After the
faults heal and repair has run, every replica must hold the same record, no
acknowledged write may be lost, and nothing an acknowledged write superseded
(deleted values included) may come back. Virtual time: no sleeps, and a
failing seed replays exactly. The workload, nemesis and checker live in
:mod:`ringkv.chaos` (tests/chaos runs them over every fault kind).
"""

from __future__ import annotations

import os

import pytest

from ringkv.chaos import Workload, run_sim

SEEDS = [int(s) for s in os.environ.get("RINGKV_SIM_SEEDS", "1,2,3").split(",")]
SECONDS = float(os.environ.get("RINGKV_SIM_SECONDS", "30"))
#: The first workload of these tests: reads, then puts with the read's context, deletes, no feeds.
WORKLOAD = Workload(mix=(("put", 6), ("delete", 1), ("get", 2)), feed_clients=0, pause=0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_faults_lose_nothing_and_replicas_converge(tmp_path, seed):
    out = run_sim(str(tmp_path), seed, "classic", SECONDS, WORKLOAD, repair_mode="read")
    assert out.verdict.acknowledged > 50, out.report()  # the run did real work under faults
    assert out.converged, out.report()
    assert not out.verdict.lost, out.report()
    assert not out.verdict.resurrected, out.report()
