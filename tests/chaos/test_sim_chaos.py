"""The fault checker over the simulator: every fault kind, a few seeds each.

Each run is a 5-node simulated cluster (real node code, virtual time) under
one kind of fault schedule (:data:`ringkv.chaos.SIM_KINDS`), with kv and
feed clients recording a history; then heal, hints, anti-entropy, and the
check (:class:`ringkv.chaos.Outcome`). A failing run prints its report and
``RINGKV_SIM_SEEDS=n`` to replay it exactly.

Longer runs: ``RINGKV_CHAOS_SEEDS=50`` (seeds per kind) and
``RINGKV_CHAOS_SECONDS=60`` (simulated seconds of faults per run).
"""

from __future__ import annotations

import os

import pytest

from ringkv.chaos import SIM_KINDS, Workload, run_sim, seeds_from_env

SEEDS = seeds_from_env(3)
SECONDS = float(os.environ.get("RINGKV_CHAOS_SECONDS", "20"))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", SIM_KINDS)
def test_no_loss_no_resurrection_and_convergence(tmp_path, kind, seed):
    out = run_sim(str(tmp_path), seed, kind, SECONDS)
    assert out.verdict.acknowledged > 20, out.report()  # the run did real work under faults
    assert out.nemesis, out.report()
    assert out.ok, out.report()


def test_a_seed_replays_exactly(tmp_path):
    runs = [run_sim(str(tmp_path / str(i)), 11, "mixed", 6.0) for i in range(2)]
    a, b = ([(op.kind, op.key, op.value, op.outcome) for op in r.history.ops] for r in runs)
    assert a == b and runs[0].nemesis == runs[1].nemesis
    assert runs[0].row() | {"wall_seconds": 0} == runs[1].row() | {"wall_seconds": 0}


def test_the_checker_catches_a_store_that_drops_concurrent_writes(tmp_path, monkeypatch):
    # sabotage: a coordinated write keeps only the new value, dropping concurrent siblings
    from ringkv.quorum import replica

    real = replica.update

    def lossy(local, context, value, actor, ts, floor=0):
        rec = real(local, context, value, actor, ts, floor)
        rec.entries = [e for e in rec.entries if e[0] == actor and e[1] == rec.clock[actor]]
        return rec

    monkeypatch.setattr(replica, "update", lossy)
    wl = Workload(keys=(b"hot",), mix=(("put", 1),), feed_clients=0)
    out = run_sim(str(tmp_path), 3, "partition", 8.0, wl)
    assert out.verdict.lost, out.report()
    assert "lost acknowledged put b'hot'" in out.report() and "RINGKV_SIM_SEEDS=3" in out.report()
